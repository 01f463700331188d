"""``RedisAgentRegistry`` under its original constructor, with ``snapshot_async``.

It is the core's registry (leased registrations with fencing, a heartbeat task that
survives errors, state kept across registrations). Changes from the original, each in
``docs/TTA_MIGRATION_GUIDE.md``:

- ``register``, ``deregister`` and ``stop_heartbeats`` are coroutines: ``await`` them.
  One that is not awaited did nothing and warns with a :class:`CompatWarning`.
- ``event_publisher=`` (TTA's realtime publisher) is refused with a ``ConfigurationError``:
  read ``registry.events()`` / ``registry.follow()`` and publish from there.
- ``get``/``discover``/``list_registered`` return :class:`AgentRecord` objects from Redis
  (which also answer ``record["name"]``), not local agent objects.
"""

from __future__ import annotations

from typing import Any

from tta_agent_coordination import AgentId
from tta_agent_coordination import RedisAgentRegistry as CoreRedisAgentRegistry
from tta_agent_coordination.agents import AgentRecord
from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.interfaces import RegistrableAgent
from tta_agents.compat._support import GUIDE, MustAwait
from tta_agents.compat.coordinator import DEFAULT_KEY_PREFIX

__all__ = ["RedisAgentRegistry"]


class RedisAgentRegistry(CoreRedisAgentRegistry):
    """The core registry with TTA's original constructor.

    Args:
        redis: an asyncio Redis client.
        key_prefix: the key prefix (``"ao"``; a trailing ``:`` is dropped).
        heartbeat_ttl_s: how long a registration lives without a heartbeat (30 s).
        heartbeat_interval_s: time between heartbeats (``ttl / 3`` by default).
        enable_events: write registration events to the registry's event stream (off by
            default, as in the original).
        event_publisher: not supported (see the module docstring); must be None.
        **kwargs: anything the core registry takes (``coordinator``, ``store``...).

    Raises:
        ConfigurationError: ``event_publisher`` was given, or a setting is invalid.
    """

    def __init__(
        self,
        redis: RedisClient,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        heartbeat_ttl_s: float = 30.0,
        heartbeat_interval_s: float | None = None,
        enable_events: bool = False,
        event_publisher: object | None = None,
        **kwargs: Any,
    ) -> None:
        if event_publisher is not None:
            raise ConfigurationError(
                "event_publisher is not supported by tta_agents.compat.RedisAgentRegistry: "
                "registration events go to the registry's event stream; pass "
                "enable_events=True and forward registry.follow() to your publisher "
                f"(see {GUIDE}, 'Behaviour changes')"
            )
        super().__init__(
            redis,
            key_prefix.rstrip(":"),
            heartbeat_ttl_s=heartbeat_ttl_s,
            heartbeat_interval_s=heartbeat_interval_s,
            enable_events=enable_events,
            **kwargs,
        )
        self._local: dict[AgentId, RegistrableAgent] = {}

    def register(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, agent: RegistrableAgent, **kwargs: Any
    ) -> MustAwait[AgentRecord]:
        """Register ``agent`` (restoring its saved state first); **await it**.

        Returns the core's ``AgentRecord`` once awaited. See the core's ``register``.
        """
        return MustAwait(self._register_local(agent, **kwargs), "registry.register(agent)")

    def deregister(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, agent: AgentId | RegistrableAgent, **kwargs: Any
    ) -> MustAwait[bool]:
        """Deregister ``agent`` (saving its state); **await it**. See the core's ``deregister``."""
        return MustAwait(self._deregister_local(agent, **kwargs), "registry.deregister(agent_id)")

    def stop_heartbeats(self) -> MustAwait[None]:  # pyright: ignore[reportIncompatibleMethodOverride]
        """Stop the heartbeat task and wait for it; **await it**."""
        return MustAwait(super().stop_heartbeats(), "registry.stop_heartbeats()")

    async def snapshot_async(self) -> dict[str, Any]:
        """The original diagnostic snapshot.

        ``{"local": {name: status}, "redis_index": [record as a dict, ...]}``: the agents
        registered through this object, and every registration in Redis.
        """
        local: dict[str, Any] = {}
        for agent in self._local.values():
            hook = getattr(agent, "status_snapshot", None)
            status: Any = None
            if callable(hook):
                status = hook()
                if hasattr(status, "__await__"):
                    status = await status
            local[agent.name] = status
        records = await self.list_registered()
        return {"local": local, "redis_index": [r.model_dump(mode="json") for r in records]}

    async def _register_local(self, agent: RegistrableAgent, **kwargs: Any) -> AgentRecord:
        record = await super().register(agent, **kwargs)
        self._local[agent.agent_id.concrete()] = agent
        return record

    async def _deregister_local(self, agent: AgentId | RegistrableAgent, **kwargs: Any) -> bool:
        removed = await super().deregister(agent, **kwargs)
        agent_id = agent if isinstance(agent, AgentId) else agent.agent_id
        self._local.pop(agent_id.concrete(), None)
        return removed
