"""Deprecated: import from :mod:`tta_agent_coordination.redis.agent_registry`.

``RedisAgentRegistry`` and its parts moved to the ``redis/agent_registry/`` package.
This alias is removed in 0.3.0.
"""

import warnings

from tta_agent_coordination.redis.agent_registry import (
    DEFAULT_STATUS,
    LeaseReleaser,
    RedisAgentRegistry,
)

__all__ = ["DEFAULT_STATUS", "LeaseReleaser", "RedisAgentRegistry"]

warnings.warn(
    "tta_agent_coordination.redis.registry is deprecated; import from "
    "tta_agent_coordination.redis.agent_registry (the alias is removed in 0.3.0)",
    DeprecationWarning,
    stacklevel=2,
)
