"""Deprecated: import from :mod:`tta_agent_coordination.agents`.

The registry's models (``AgentCapability``, ``AgentRecord``, ``RegistryEvent`` and their
enums) moved to ``agents``. This alias is removed in 0.3.0.
"""

import warnings

from tta_agent_coordination.agents import (
    AgentCapability,
    AgentRecord,
    CapabilityType,
    RegistryEvent,
    RegistryEventKind,
)

__all__ = [
    "AgentCapability",
    "AgentRecord",
    "CapabilityType",
    "RegistryEvent",
    "RegistryEventKind",
]

warnings.warn(
    "tta_agent_coordination.registry_models is deprecated; import from "
    "tta_agent_coordination.agents (the alias is removed in 0.3.0)",
    DeprecationWarning,
    stacklevel=2,
)
