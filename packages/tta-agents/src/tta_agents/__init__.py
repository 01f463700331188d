"""tta-agents: TTA's agents, pipeline, compat layer and key migration on the generic core.

Built only on ``tta_agent_coordination``'s public API (an import-linter contract checks
it). See ``docs/TTA_MIGRATION_GUIDE.md``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
