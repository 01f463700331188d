"""``RedisAgentRegistry``: presence, heartbeats, capabilities and failure detection.

A façade over the parts of :mod:`tta_agent_coordination.redis.agent_registry`:
registration leases (``registration``), heartbeats and agent hooks (``heartbeats``,
``hooks``), reads (``reads``), expiry and hand-over (``reaper``) and the event stream
(``events``). Every change that touches more than one key is one Lua script
(``redis/scripts/registry_*.lua``, called through ``scripts``) and every time comes from
the Redis server clock. See ``docs/registry.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError

from tta_agent_coordination.agents import AgentRecord, CapabilityType, RegistryEvent
from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import CoordinationError
from tta_agent_coordination.interfaces import (
    AgentRegistry,
    CallGuard,
    Ownership,
    RegistrableAgent,
)
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry.config import RegistryConfig
from tta_agent_coordination.redis.agent_registry.core import LeaseReleaser, RegistryCore
from tta_agent_coordination.redis.agent_registry.events import EventStream
from tta_agent_coordination.redis.agent_registry.heartbeats import Heartbeats
from tta_agent_coordination.redis.agent_registry.reads import Reads
from tta_agent_coordination.redis.agent_registry.reaper import Reaper
from tta_agent_coordination.redis.agent_registry.registration import (
    DEFAULT_STATUS,
    Registrations,
)
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.resilience.defaults import default_redis_guard
from tta_agent_coordination.store import AgentEvent, Durability, MessageStore, StoreWriter

__all__ = ["DEFAULT_STATUS", "LeaseReleaser", "RedisAgentRegistry"]


class RedisAgentRegistry(AgentRegistry):
    """Agent presence on Redis: leased registrations, heartbeats, discovery and events.

    Settings come from ``config`` (a :class:`RegistryConfig`) and/or the keywords of the
    same names (which override it); a setting left at None keeps the config's value.

    Args:
        redis: an asyncio Redis client (``decode_responses`` either way). The registry
            does not own it and never closes it.
        key_prefix: prefix of every key (``"ao"`` as in TTA).
        config: the settings; ``RegistryConfig()`` (TTA's defaults) when None.
        heartbeat_ttl_s: how long a registration stays alive without a heartbeat.
        heartbeat_interval_s: time between heartbeats; ``heartbeat_ttl_s / 3`` by default.
        state_retention_s: how long exported state, and the record of an expired
            registration, are kept (24 h by default; at least the TTL).
        state_save_interval_s: how often the heartbeat task saves ``export_state()``;
            ``heartbeat_ttl_s`` by default, ``0`` saves only on deregistration.
        hook_timeout_s: how long the heartbeat task waits for an agent's async
            ``status_snapshot()``/``export_state()``; ``heartbeat_interval_s / 2`` by
            default. A hook that is late is skipped for that beat; liveness is renewed.
        events_max_len: approximate bound of the events stream; ``0`` turns events off.
        enable_events: False turns the events stream off (as ``events_max_len=0``).
        max_state_bytes: the largest exported state kept, serialised.
        auto_reregister: when the heartbeat task finds that a registration expired (the
            process stalled past the TTL), register it again under a new token unless
            another owner took the id meanwhile.
        reap_batch: how many expired registrations one reaper script handles at a time.
        store_seen_interval_s: how often the heartbeat task tells the store which held
            agents are alive (``MessageStore.record_seen``: the directory's
            ``last_seen``); ``0`` never does. Off the heartbeat path: a slow or failing
            store never delays a heartbeat.
        guard: wraps every Redis call. By default a ``RedisGuard`` (circuit breaker named
            ``redis`` and retries of repeatable calls) shared by every component on the
            same client; ``PassthroughGuard()`` turns protection off.
        coordinator: when given, a registration that replaces a failed (or taken-over)
            holder returns the holder's leased messages to the queue before it returns,
            and :meth:`recover_failed` uses it by default.
        store: a :class:`MessageStore` that records registrations and deregistrations
            (the durable agent directory).
        durability: ``"async"`` (write-behind, the default) or ``"sync"`` (recorded
            before ``register``/``deregister`` return).

    Raises:
        ConfigurationError: a setting is out of range, or the key prefix is invalid.
    """

    def __init__(
        self,
        redis: RedisClient,
        key_prefix: str = "ao",
        *,
        config: RegistryConfig | None = None,
        heartbeat_ttl_s: float | None = None,
        heartbeat_interval_s: float | None = None,
        state_retention_s: float | None = None,
        state_save_interval_s: float | None = None,
        hook_timeout_s: float | None = None,
        events_max_len: int | None = None,
        enable_events: bool | None = None,
        max_state_bytes: int | None = None,
        auto_reregister: bool | None = None,
        reap_batch: int | None = None,
        store_seen_interval_s: float | None = None,
        guard: CallGuard | None = None,
        coordinator: LeaseReleaser | None = None,
        store: MessageStore | None = None,
        durability: Durability | str = Durability.ASYNC,
    ) -> None:
        settings: dict[str, Any] = {
            "heartbeat_ttl_s": heartbeat_ttl_s,
            "heartbeat_interval_s": heartbeat_interval_s,
            "state_retention_s": state_retention_s,
            "state_save_interval_s": state_save_interval_s,
            "hook_timeout_s": hook_timeout_s,
            "events_max_len": events_max_len,
            "enable_events": enable_events,
            "max_state_bytes": max_state_bytes,
            "auto_reregister": auto_reregister,
            "reap_batch": reap_batch,
            "store_seen_interval_s": store_seen_interval_s,
        }
        given = {name: value for name, value in settings.items() if value is not None}
        if config is None:
            config = RegistryConfig.build(**given)
        elif given:
            config = config.updated(**given)
        self._core = core = RegistryCore(
            redis,
            KeySpace(key_prefix),
            config,
            guard=guard if guard is not None else default_redis_guard(redis),
            coordinator=coordinator,
            store=store,
            durability=durability,
        )
        self._registrations = Registrations(core)
        self._heartbeats = Heartbeats(core, self._registrations)
        self._reads = Reads(core)
        self._reaper = Reaper(core)
        self._events = EventStream(core)
        # Tests of the store adapters flush the write-behind queue through this name.
        self._writer: StoreWriter[AgentEvent] | None = core.writer

    # --- properties ---------------------------------------------------------------------

    @property
    def config(self) -> RegistryConfig:
        """The validated settings."""
        return self._core.config

    @property
    def keys(self) -> KeySpace:
        """The key space (prefix) this registry works in."""
        return self._core.keys

    @property
    def heartbeat_ttl_s(self) -> float:
        """How long a registration stays alive without a heartbeat."""
        return self._core.config.heartbeat_ttl_s

    @property
    def heartbeat_interval_s(self) -> float:
        """Time between two heartbeats of one registration."""
        return self._core.config.resolved_heartbeat_interval_s

    @property
    def heartbeats_running(self) -> bool:
        """Whether the heartbeat task is running."""
        return self._heartbeats.running

    def held(self) -> list[AgentId]:
        """The agent ids this registry instance currently holds registrations for."""
        return sorted(self._core.held, key=str)

    def ownership(self, agent_id: AgentId) -> Ownership:
        """Whether this instance holds ``agent_id``'s registration and knows it is live.

        Local and constant-time (a worker asks before every lease batch). ``HELD`` while
        the last renewal was sent less than ``heartbeat_ttl_s`` ago, minus a margin (at
        most 1 s) for a request in flight, on a clock that counts stalls and host
        suspends. Past that, ``UNVERIFIED``: the process stalled (or Redis was
        unreachable) long enough for the registration to expire and be taken over; the
        heartbeat task then beats it at once, which makes it ``HELD`` again (renewed, or
        re-registered when ``auto_reregister`` and nobody took it) or ``LOST`` (taken
        over, evicted, deregistered). See ``docs/registry.md`` (Fencing).
        """
        return self._core.ownership(agent_id.concrete())

    # --- registration -------------------------------------------------------------------

    async def register(
        self,
        agent: RegistrableAgent,
        *,
        takeover: bool = False,
        status: str = DEFAULT_STATUS,
        metadata: Mapping[str, Any] | None = None,
    ) -> AgentRecord:
        """Register ``agent``; the registration is complete when this returns.

        ``agent`` needs an ``agent_id`` and a ``name``; its ``capabilities`` are indexed.
        When state exported by an earlier holder of the same id is retained and the
        agent has ``import_state``, the state is passed to it before the record is
        written (a failing ``import_state`` aborts the registration).

        The id must not be held by a live registration of another owner, this registry
        included: pass ``takeover=True`` to replace it on purpose (the old owner's
        heartbeats and deregistration then fail with ``StaleRegistrationError``). A
        holder whose liveness expired is replaced without ``takeover``. When a holder is
        replaced and the registry has a ``coordinator``, the holder's leased messages
        return to the queue before this returns.

        Raises:
            AgentAlreadyRegisteredError: a live owner holds the id and ``takeover`` is
                False.
            RegistrationValidationError: a capability, the status or the metadata is
                invalid.
            RegistryUnavailableError: Redis failed; repeating the call is safe.
        """
        return await self._registrations.register(
            agent, takeover=takeover, status=status, metadata=metadata
        )

    async def register_id(
        self,
        agent_id: AgentId,
        *,
        name: str | None = None,
        capabilities: Iterable[Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        takeover: bool = False,
        status: str = DEFAULT_STATUS,
    ) -> AgentRecord:
        """Register ``agent_id`` for a caller without an agent object.

        ``name`` defaults to the agent type; ``capabilities`` may hold
        :class:`AgentCapability` objects, names or mappings. Ownership rules and errors
        are those of :meth:`register`.
        """
        return await self._registrations.register_id(
            agent_id,
            name=name,
            capabilities=capabilities,
            metadata=metadata,
            takeover=takeover,
            status=status,
        )

    async def deregister(
        self, agent: AgentId | RegistrableAgent, *, save_state: bool = True
    ) -> bool:
        """Remove this registry's registration of ``agent``; complete when it returns.

        The agent's ``export_state()`` (when it has one and ``save_state`` is True) is
        saved in the same step, retained for ``state_retention_s``. Afterwards no
        heartbeat of that registration, however late, recreates it. Returns False when
        this registry holds no registration of the id.

        Raises:
            StaleRegistrationError: another owner took the id over meanwhile; nothing was
                removed.
            RegistryUnavailableError: Redis failed; the registration is kept (and
                renewed) so that the call can be repeated.
        """
        return await self._registrations.deregister(agent, save_state=save_state)

    async def seed_state(self, agent_id: AgentId, state: Any, *, replace: bool = False) -> bool:
        """Store a saved state for ``agent_id``, for its next registration to import.

        For an agent that is not registered now: a migration from another system, or a
        state moved from elsewhere. The agent's next ``register`` hands it to its
        ``import_state`` hook, as a state it exported itself would be; it is kept for the
        registry's ``state_retention_s``. Returns whether it was stored: a state already
        there is kept unless ``replace``.

        Raises:
            AgentAlreadyRegisteredError: the agent is held by a live owner (its own
                heartbeats write its state).
            RegistrationValidationError: ``state`` is not JSON-serialisable, or is over
                ``max_state_bytes``.
            RegistryUnavailableError: Redis failed.
        """
        return await self._registrations.seed_state(agent_id.concrete(), state, replace=replace)

    async def evict(self, agent_id: AgentId) -> bool:
        """Remove ``agent_id``'s registration whoever owns it (an operator's tool).

        The owner's next heartbeat fails with ``StaleRegistrationError``. Returns whether
        there was a record to remove.
        """
        return await self._registrations.evict(agent_id.concrete())

    # --- heartbeats and status ----------------------------------------------------------

    async def heartbeat(self, agent: AgentId | RegistrableAgent) -> datetime:
        """Renew the registration of ``agent`` now (the heartbeat task does this itself).

        Returns the new liveness expiry.

        Raises:
            StaleRegistrationError: this registry holds no registration of the id, or
                it was deregistered or taken over elsewhere.
            RegistrationExpiredError: the liveness expired first; register again.
            RegistryUnavailableError: Redis failed.
        """
        return await self._heartbeats.heartbeat(agent)

    async def set_status(self, agent: AgentId | RegistrableAgent, status: str) -> bool:
        """Set the registration's status (and renew its liveness).

        A ``status_changed`` event is emitted only when the status really changes; the
        return value says whether it did.

        Raises:
            RegistrationValidationError: the status is empty or too long.
            StaleRegistrationError: as for :meth:`heartbeat`.
        """
        return await self._heartbeats.set_status(agent, status)

    def start_heartbeats(self) -> None:
        """Start the background task renewing every registration this registry holds.

        Idempotent; needs a running event loop. The one task survives Redis errors (each
        logged and retried soon) and never lets one slow agent hook delay the others.
        """
        self._heartbeats.start()

    async def stop_heartbeats(self) -> None:
        """Stop the heartbeat task and wait until it and its beats have ended (idempotent)."""
        await self._heartbeats.stop()

    async def aclose(self, *, deregister: bool = True) -> None:
        """Stop heartbeats and (by default) deregister every agent this registry holds.

        Errors of single deregistrations are logged, not raised. The Redis client is
        not closed.
        """
        await self.stop_heartbeats()
        for agent_id in list(self._core.held) if deregister else []:
            try:
                await self.deregister(agent_id)
            except (CoordinationError, RedisError, OSError) as exc:
                self._core.log.warning(
                    "deregister_on_close_failed", agent=str(agent_id), error=str(exc)
                )
        if self._core.writer is not None:
            await self._core.writer.aclose()

    # --- reading ------------------------------------------------------------------------

    async def get(self, agent_id: AgentId) -> AgentRecord | None:
        """The record of ``agent_id``, or None when it is not registered.

        The record of a registration that expired is kept (``alive=False``) for
        ``state_retention_s``; a deregistered agent has none.
        """
        return await self._reads.get(agent_id.concrete())

    async def list_registered(self) -> list[AgentRecord]:
        """Every registration in the liveness set, sorted by id.

        Each carries ``alive``: a registration whose liveness expired reads
        ``alive=False`` until a reaper (:meth:`reap_expired`) removes it from the list.
        """
        return await self._reads.list_registered()

    async def discover(
        self,
        type: str | None = None,
        capability: str | None = None,
        alive_only: bool = True,
        *,
        capability_type: CapabilityType | str | None = None,
    ) -> list[AgentRecord]:
        """Registrations of an agent ``type`` and/or advertising ``capability`` (by name).

        With neither, every registration. ``capability_type`` keeps those with at least
        one capability of that type (and, with ``capability``, that capability must be
        of that type). ``alive_only=False`` includes expired registrations not yet reaped.

        Raises:
            ConfigurationError: ``type`` or ``capability`` is not a valid name.
        """
        return await self._reads.discover(
            type, capability, alive_only, capability_type=capability_type
        )

    # --- failure detection --------------------------------------------------------------

    async def reap_expired(self) -> list[AgentId]:
        """Expire every registration whose liveness passed; the ids expired by this call.

        Atomic per batch: each expired registration leaves the liveness set and the
        type/capability indexes, keeps its record (``alive=False``) for
        ``state_retention_s``, and is reported by exactly one ``expired`` event however
        many reapers run at once.
        """
        return await self._reaper.reap_expired()

    async def recover_failed(self, coordinator: LeaseReleaser | None = None) -> dict[AgentId, int]:
        """Reap expired registrations and hand their leased messages back to their queues.

        For each agent that :meth:`reap_expired` finds, ``coordinator.release_leases``
        returns every message leased from that agent's queue to its ready stream, so a
        replacement instance (same ``AgentId``) receives it. Returns the number released
        per expired agent. A release that fails is logged and left out; those messages
        come back anyway when their visibility timeouts pass.

        Raises:
            ConfigurationError: no coordinator is given here or to the constructor.
        """
        return await self._reaper.recover_failed(coordinator)

    # --- events -------------------------------------------------------------------------

    async def events(self, since: str | None = None, limit: int = 100) -> list[RegistryEvent]:
        """Up to ``limit`` events after the event id ``since`` (from the oldest by default).

        Raises:
            ConfigurationError: ``limit`` is not positive or ``since`` is not an event id.
        """
        return await self._events.events(since, limit)

    def follow(
        self, since: str | None = None, *, block_s: float = 5.0, limit: int = 100
    ) -> AsyncIterator[RegistryEvent]:
        """Yield events as they are appended, forever (break out of the loop to stop).

        Starts after the event id ``since``, or with the next new event when None. Each
        wait blocks a connection for at most ``block_s`` seconds (XREAD BLOCK).

        Raises:
            ConfigurationError: ``block_s`` or ``limit`` is not positive, or ``since`` is
                not an event id.
            RegistryUnavailableError: Redis failed (the iterator ends).
        """
        return self._events.follow(since, block_s=block_s, limit=limit)
