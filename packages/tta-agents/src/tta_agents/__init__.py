"""tta-agents: TTA's agents, pipeline, compat layer and key migration on the generic core.

Built only on ``tta_agent_coordination``'s public API (an import-linter contract checks
it). See ``docs/TTA_MIGRATION_GUIDE.md``.

- :mod:`tta_agents.types`: ``AgentType`` and ``create_agent_id`` / ``ipa`` / ``wba`` / ``nga``.
- :mod:`tta_agents.contracts`: ``OrchestrationRequest``/``OrchestrationResponse`` and each
  agent's payload models.
- :mod:`tta_agents.workers`: ``ipa_worker`` / ``wba_worker`` / ``nga_worker`` around TTA's
  adapters.
- :mod:`tta_agents.compat`: the original ``agent_orchestration`` names, for a switch that
  only changes imports.
- :mod:`tta_agents.pipeline`: ``TTAPipeline``, the IPA → WBA → NGA workflow over type-wide
  requests.
- :mod:`tta_agents.migrate`: ``legacy_report`` and ``migrate_keys``, the original key
  layout into the new key space (``tta-coord tta migrate-keys``).
"""

from tta_agents.contracts import (
    IPARequest,
    IPAResponse,
    NGARequest,
    NGAResponse,
    OrchestrationRequest,
    OrchestrationResponse,
    WBARequest,
    WBAResponse,
)
from tta_agents.migrate import (
    LegacyReport,
    MigrationError,
    MigrationReport,
    legacy_report,
    migrate_keys,
)
from tta_agents.pipeline import (
    PipelineError,
    PipelineResult,
    Step,
    StepKind,
    TTAPipeline,
    WorkflowStatus,
)
from tta_agents.types import AgentType, create_agent_id, ipa, nga, openhands, wba
from tta_agents.workers import (
    AGENT_TIMEOUTS_S,
    AgentAdapter,
    InputProcessorAdapter,
    NarrativeGeneratorAdapter,
    WorldBuilderAdapter,
    ipa_worker,
    nga_worker,
    wba_worker,
)

__version__ = "0.1.0"

__all__ = [
    "AGENT_TIMEOUTS_S",
    "AgentAdapter",
    "AgentType",
    "IPARequest",
    "IPAResponse",
    "InputProcessorAdapter",
    "LegacyReport",
    "MigrationError",
    "MigrationReport",
    "NGARequest",
    "NGAResponse",
    "NarrativeGeneratorAdapter",
    "OrchestrationRequest",
    "OrchestrationResponse",
    "PipelineError",
    "PipelineResult",
    "Step",
    "StepKind",
    "TTAPipeline",
    "WBARequest",
    "WBAResponse",
    "WorkflowStatus",
    "WorldBuilderAdapter",
    "__version__",
    "create_agent_id",
    "ipa",
    "ipa_worker",
    "legacy_report",
    "migrate_keys",
    "nga",
    "nga_worker",
    "openhands",
    "wba",
    "wba_worker",
]
