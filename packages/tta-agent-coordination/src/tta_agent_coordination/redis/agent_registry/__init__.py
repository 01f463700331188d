"""The agent registry on Redis: ``RedisAgentRegistry`` and its parts.

One module per job: ``registry`` (the façade), ``config`` (``RegistryConfig``),
``registration`` (leases), ``heartbeats`` (the heartbeat task) with ``hooks`` (agent
hooks), ``reads`` (get, list, discover), ``reaper`` (expiry and hand-over), ``events``
(the event stream), ``scripts`` (typed calls of the Lua scripts), ``codec`` (conversions)
and ``core`` (what the parts share). See ``docs/registry.md``.
"""

from tta_agent_coordination.redis.agent_registry.config import RegistryConfig
from tta_agent_coordination.redis.agent_registry.core import LeaseReleaser
from tta_agent_coordination.redis.agent_registry.registration import DEFAULT_STATUS
from tta_agent_coordination.redis.agent_registry.registry import RedisAgentRegistry

__all__ = ["DEFAULT_STATUS", "LeaseReleaser", "RedisAgentRegistry", "RegistryConfig"]
