"""``RedisAgentRegistry``: presence, heartbeats, capabilities and failure detection.

Every change that touches more than one key is one Lua script (``redis/scripts/
registry_*.lua``) and every time comes from the Redis server clock. A registration holds
a lease (a random owner token stored with the record): only that owner can renew,
change or remove it, so a late heartbeat can never bring back a removed agent and two
processes cannot silently share one agent id. See ``docs/registry.md``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tta_agent_coordination.errors import (
    AgentAlreadyRegisteredError,
    ConfigurationError,
    CoordinationError,
    RegistrationExpiredError,
    RegistrationValidationError,
    RegistryUnavailableError,
    StaleRegistrationError,
)
from tta_agent_coordination.interfaces import AgentRegistry, CallGuard, RegistrableAgent
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.lua import ScriptSet
from tta_agent_coordination.redis.registry_codec import (
    capabilities_of,
    decode_events,
    decode_records,
    dump_json,
    ms_to_datetime,
    normalise_capabilities,
    normalise_status,
    snapshot_parts,
)
from tta_agent_coordination.registry_models import (
    AgentCapability,
    AgentRecord,
    CapabilityType,
    RegistryEvent,
)
from tta_agent_coordination.resilience.defaults import default_redis_guard
from tta_agent_coordination.store import (
    AgentEvent,
    AgentEventKind,
    Durability,
    MessageStore,
    StoreWriter,
)

__all__ = ["DEFAULT_STATUS", "LeaseReleaser", "RedisAgentRegistry"]

DEFAULT_STATUS = "active"
"""The status of a new registration unless another is given."""

T = TypeVar("T")

_MAX_METADATA_BYTES = 64 * 1024
_STREAM_ID_RE = re.compile(r"^\d{1,20}(-\d{1,20})?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class LeaseReleaser(Protocol):
    """What failure hand-over needs from a coordinator (``RedisMessageCoordinator`` fits)."""

    async def release_leases(self, agent_id: AgentId) -> int:
        """Return every leased message of ``agent_id``'s queue to its ready stream."""
        ...


@dataclass(eq=False)
class _Held:
    """A registration this registry instance holds (its lease token and how to renew it)."""

    agent_id: AgentId
    owner: str
    name: str
    capabilities: tuple[AgentCapability, ...]
    metadata_json: str
    status: str
    agent: Any
    next_due: float
    last_state_save: float
    expires_at: datetime | None = None
    # Loop time of the last renewal that succeeded (local clock: the expiry above is on
    # the Redis server's clock and cannot be compared with ours).
    renewed_at: float | None = None


@dataclass(eq=False)
class _LockEntry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class RedisAgentRegistry(AgentRegistry):
    """Agent presence on Redis: leased registrations, heartbeats, discovery and events.

    Args:
        redis: an asyncio Redis client (``decode_responses`` either way). The registry
            does not own it and never closes it.
        key_prefix: prefix of every key (``"ao"`` as in TTA).
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
        store_seen_interval_s: how often the heartbeat task tells the store which held
            agents are alive (``MessageStore.record_seen``: the directory's
            ``last_seen``); ``0`` never does. Off the heartbeat path: a slow or failing
            store never delays a heartbeat.

    Raises:
        ConfigurationError: a setting is out of range.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        key_prefix: str = "ao",
        *,
        heartbeat_ttl_s: float = 30.0,
        heartbeat_interval_s: float | None = None,
        state_retention_s: float = 24 * 3600.0,
        state_save_interval_s: float | None = None,
        hook_timeout_s: float | None = None,
        events_max_len: int = 10_000,
        enable_events: bool = True,
        max_state_bytes: int = 1_000_000,
        auto_reregister: bool = True,
        reap_batch: int = 500,
        guard: CallGuard | None = None,
        coordinator: LeaseReleaser | None = None,
        store: MessageStore | None = None,
        durability: Durability | str = Durability.ASYNC,
        store_seen_interval_s: float = 60.0,
    ) -> None:
        if not heartbeat_ttl_s > 0:
            raise ConfigurationError(f"heartbeat_ttl_s must be > 0, got {heartbeat_ttl_s}")
        interval = heartbeat_ttl_s / 3 if heartbeat_interval_s is None else heartbeat_interval_s
        if not 0 < interval < heartbeat_ttl_s:
            raise ConfigurationError(
                f"heartbeat_interval_s must be > 0 and below heartbeat_ttl_s "
                f"({heartbeat_ttl_s}), got {interval}"
            )
        if not state_retention_s >= heartbeat_ttl_s:
            raise ConfigurationError(
                f"state_retention_s must be at least heartbeat_ttl_s ({heartbeat_ttl_s}), "
                f"got {state_retention_s}"
            )
        save_every = heartbeat_ttl_s if state_save_interval_s is None else state_save_interval_s
        if save_every < 0:
            raise ConfigurationError(f"state_save_interval_s must be >= 0, got {save_every}")
        hook_timeout = interval / 2 if hook_timeout_s is None else hook_timeout_s
        if not hook_timeout > 0:
            raise ConfigurationError(f"hook_timeout_s must be > 0, got {hook_timeout}")
        if events_max_len < 0:
            raise ConfigurationError(f"events_max_len must be >= 0, got {events_max_len}")
        if max_state_bytes <= 0:
            raise ConfigurationError(f"max_state_bytes must be > 0, got {max_state_bytes}")
        if reap_batch <= 0:
            raise ConfigurationError(f"reap_batch must be > 0, got {reap_batch}")
        if store_seen_interval_s < 0:
            raise ConfigurationError(
                f"store_seen_interval_s must be >= 0, got {store_seen_interval_s}"
            )
        self._redis = redis
        self._keys = KeySpace(key_prefix)
        self._ttl_s = float(heartbeat_ttl_s)
        self._ttl_ms = max(1, round(heartbeat_ttl_s * 1000))
        self._interval_s = float(interval)
        self._retention_ms = max(1, round(state_retention_s * 1000))
        self._save_every_s = float(save_every)
        self._hook_timeout_s = float(hook_timeout)
        self._events_max_len = events_max_len if enable_events else 0
        self._max_state_bytes = max_state_bytes
        self._auto_reregister = auto_reregister
        self._reap_batch = reap_batch
        self._guard: CallGuard = guard if guard is not None else default_redis_guard(redis)
        self._coordinator = coordinator
        self._scripts = ScriptSet(redis)
        self._held: dict[AgentId, _Held] = {}
        self._locks: dict[AgentId, _LockEntry] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._beats: dict[AgentId, asyncio.Task[None]] = {}
        self._log = get_logger(__name__, prefix=key_prefix)
        self._writer: StoreWriter[AgentEvent] | None = (
            StoreWriter(store.record_agents, durability, name="agents")
            if store is not None
            else None
        )
        self._store = store
        self._seen_every_s = float(store_seen_interval_s)
        self._seen_task: asyncio.Task[None] | None = None

    # --- properties ---------------------------------------------------------------------

    @property
    def keys(self) -> KeySpace:
        """The key space (prefix) this registry works in."""
        return self._keys

    @property
    def heartbeat_ttl_s(self) -> float:
        """How long a registration stays alive without a heartbeat."""
        return self._ttl_s

    @property
    def heartbeat_interval_s(self) -> float:
        """Time between two heartbeats of one registration."""
        return self._interval_s

    @property
    def heartbeats_running(self) -> bool:
        """Whether the heartbeat task is running."""
        return self._loop_task is not None and not self._loop_task.done()

    def held(self) -> list[AgentId]:
        """The agent ids this registry instance currently holds registrations for."""
        return sorted(self._held, key=str)

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
        agent_id = getattr(agent, "agent_id", None)
        if not isinstance(agent_id, AgentId):
            raise RegistrationValidationError(
                f"cannot register {agent!r}: it needs an agent_id of type AgentId"
            )
        name = getattr(agent, "name", None)
        if not isinstance(name, str) or not name:
            raise RegistrationValidationError(
                f"cannot register {agent_id}: the agent needs a non-empty str name"
            )
        return await self._register(
            agent_id,
            name=name,
            capabilities=capabilities_of(agent),
            metadata=metadata,
            status=status,
            takeover=takeover,
            agent=agent,
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
        if not isinstance(agent_id, AgentId):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise RegistrationValidationError(f"agent_id must be an AgentId, got {agent_id!r}")
        if name is not None and (not isinstance(name, str) or not name):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise RegistrationValidationError(f"name must be a non-empty str, got {name!r}")
        return await self._register(
            agent_id,
            name=name or agent_id.type,
            capabilities=normalise_capabilities(capabilities),
            metadata=metadata,
            status=status,
            takeover=takeover,
            agent=None,
        )

    async def _register(
        self,
        agent_id: AgentId,
        *,
        name: str,
        capabilities: tuple[AgentCapability, ...],
        metadata: Mapping[str, Any] | None,
        status: str,
        takeover: bool,
        agent: Any,
    ) -> AgentRecord:
        status = normalise_status(status)
        meta: dict[str, Any] = {str(k): v for k, v in (metadata or {}).items()}
        metadata_json = dump_json(meta, f"metadata of {agent_id}", _MAX_METADATA_BYTES)
        async with self._locked(agent_id):
            importer = getattr(agent, "import_state", None) if agent is not None else None
            if callable(importer):
                await self._restore_state(agent_id, importer, takeover=takeover)
            held = _Held(
                agent_id=agent_id,
                owner=uuid.uuid4().hex,
                name=name,
                capabilities=capabilities,
                metadata_json=metadata_json,
                status=status,
                agent=agent,
                next_due=0.0,
                last_state_save=_now(),
            )
            registered_at, replaced = await self._write_registration(held, takeover=takeover)
            self._held[agent_id] = held
        self._log.info("registered", agent=str(agent_id), replaced=replaced)
        if self._writer is not None:
            await self._writer.record(
                [
                    AgentEvent(
                        kind=AgentEventKind.REGISTERED,
                        agent_id=agent_id,
                        name=name,
                        capabilities=[c.name for c in capabilities],
                        metadata=meta,
                    )
                ]
            )
        if replaced != "none" and self._coordinator is not None:
            await self._release(self._coordinator, agent_id, reason=f"replaced {replaced}")
        return AgentRecord(
            agent_id=agent_id,
            name=name,
            alive=True,
            status=status,
            capabilities=list(capabilities),
            metadata=meta,
            registered_at=registered_at,
            last_heartbeat=registered_at,
            expires_at=held.expires_at,
        )

    async def _restore_state(
        self, agent_id: AgentId, importer: Callable[..., Any], *, takeover: bool
    ) -> None:
        keys = [self._keys.registry_liveness, self._keys.registry_state(agent_id)]
        held_ms, has_state, raw = await self._call(
            "registry_peek",
            lambda: self._scripts.run("registry_peek", keys, [str(agent_id)]),
            retry=True,
        )
        if int(held_ms) > 0 and not takeover:
            raise AgentAlreadyRegisteredError(str(agent_id), int(held_ms) / 1000)
        if not int(has_state):
            return
        try:
            state = json.loads(text(raw))
        except ValueError:
            self._log.warning("state_undecodable", agent=str(agent_id))
            return
        await _maybe_await(importer(state))
        self._log.info("state_restored", agent=str(agent_id))

    async def _write_registration(self, held: _Held, *, takeover: bool) -> tuple[datetime, str]:
        agent_id = held.agent_id
        keys = [
            self._keys.registry_agent(agent_id),
            self._keys.registry_liveness,
            self._keys.registry_events,
        ]
        caps = held.capabilities
        args: list[Any] = [
            str(agent_id),
            agent_id.type,
            held.owner,
            held.name,
            held.status,
            dump_json([c.model_dump(mode="json") for c in caps], "capabilities"),
            " ".join(c.name for c in caps),
            held.metadata_json,
            self._ttl_ms,
            1 if takeover else 0,
            self._retention_ms,
            self._events_max_len,
            self._keys.registry_capability(""),
            self._keys.registry_type(""),
        ]
        reply = await self._call(
            "registry_register",
            lambda: self._scripts.run("registry_register", keys, args),
            retry=True,
        )
        if text(reply[0]) == "held":
            raise AgentAlreadyRegisteredError(str(agent_id), int(reply[1]) / 1000)
        registered_at = ms_to_datetime(reply[1])
        held.expires_at = ms_to_datetime(reply[2])
        held.renewed_at = _now()
        held.next_due = _now() + self._interval_s
        assert registered_at is not None
        return registered_at, text(reply[3])

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
        agent_id = _id_of(agent)
        async with self._locked(agent_id):
            held = self._held.pop(agent_id, None)
            if held is None:
                return False
            self._cancel_beat(agent_id)
            state = await self._export_state(held, wait_s=None) if save_state else None
            try:
                result = await self._remove(held, owner=held.owner, state=state, force=False)
            except RegistryUnavailableError:
                self._held.setdefault(agent_id, held)
                raise
        if result == "replaced":
            self._log.warning("deregister_refused", agent=str(agent_id), reason="replaced")
            raise StaleRegistrationError(str(agent_id), "replaced")
        self._log.info("deregistered", agent=str(agent_id), found=result == "ok")
        await self._record_gone(agent_id)
        return True

    async def evict(self, agent_id: AgentId) -> bool:
        """Remove ``agent_id``'s registration whoever owns it (an operator's tool).

        The owner's next heartbeat fails with ``StaleRegistrationError``. Returns whether
        there was a record to remove.
        """
        async with self._locked(agent_id):
            held = self._held.pop(agent_id, None)
            if held is not None:
                self._cancel_beat(agent_id)
            result = await self._remove(
                held, owner="", state=None, force=True, agent_id=agent_id, reason="evicted"
            )
        self._log.info("evicted", agent=str(agent_id), found=result == "ok")
        await self._record_gone(agent_id)
        return result == "ok"

    async def _remove(
        self,
        held: _Held | None,
        *,
        owner: str,
        state: str | None,
        force: bool,
        agent_id: AgentId | None = None,
        reason: str = "deregistered",
    ) -> str:
        target = agent_id if agent_id is not None else held.agent_id if held else None
        assert target is not None
        keys = [
            self._keys.registry_agent(target),
            self._keys.registry_liveness,
            self._keys.registry_events,
            self._keys.registry_state(target),
        ]
        args: list[Any] = [
            str(target),
            owner,
            1 if force else 0,
            0 if state is None else 1,
            state or "",
            self._retention_ms,
            self._events_max_len,
            self._keys.registry_capability(""),
            self._keys.registry_type(""),
            reason,
        ]
        reply = await self._call(
            "registry_deregister",
            lambda: self._scripts.run("registry_deregister", keys, args),
            retry=True,
        )
        return text(reply[0])

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
        held = self._held_or_raise(_id_of(agent))
        try:
            return await self._beat_once(held)
        except StaleRegistrationError:
            self._drop(held)
            raise

    async def set_status(self, agent: AgentId | RegistrableAgent, status: str) -> bool:
        """Set the registration's status (and renew its liveness).

        A ``status_changed`` event is emitted only when the status really changes; the
        return value says whether it did.

        Raises:
            RegistrationValidationError: the status is empty or too long.
            StaleRegistrationError: as for :meth:`heartbeat`.
        """
        status = normalise_status(status)
        held = self._held_or_raise(_id_of(agent))
        held.status = status
        try:
            reply = await self._heartbeat_script(held, status=status)
        except StaleRegistrationError:
            self._drop(held)
            raise
        return bool(int(reply[3]))

    def start_heartbeats(self) -> None:
        """Start the background task renewing every registration this registry holds.

        Idempotent; needs a running event loop. The one task survives Redis errors (each
        logged and retried soon) and never lets one slow agent hook delay the others.
        """
        if self.heartbeats_running:
            return
        loop = asyncio.get_running_loop()
        self._loop_task = loop.create_task(self._heartbeat_loop(), name="registry-heartbeats")

    async def stop_heartbeats(self) -> None:
        """Stop the heartbeat task and wait until it and its beats have ended (idempotent)."""
        task, self._loop_task = self._loop_task, None
        beats = list(self._beats.values())
        self._beats.clear()
        pending = [t for t in (task, *beats) if t is not None and not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def aclose(self, *, deregister: bool = True) -> None:
        """Stop heartbeats and (by default) deregister every agent this registry holds.

        Errors of single deregistrations are logged, not raised. The Redis client is
        not closed.
        """
        await self.stop_heartbeats()
        for agent_id in list(self._held) if deregister else []:
            try:
                await self.deregister(agent_id)
            except (CoordinationError, RedisError, OSError) as exc:
                self._log.warning("deregister_on_close_failed", agent=str(agent_id), error=str(exc))
        if self._writer is not None:
            await self._writer.aclose()

    async def _record_gone(self, agent_id: AgentId) -> None:
        """Tell the store (if any) that ``agent_id`` left the directory."""
        if self._writer is not None:
            await self._writer.record(
                [AgentEvent(kind=AgentEventKind.DEREGISTERED, agent_id=agent_id)]
            )

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        tick = max(0.005, min(self._interval_s / 4, 1.0))
        seen_due = loop.time() + self._seen_every_s
        try:
            while True:
                try:
                    now = loop.time()
                    for agent_id in [a for a, t in self._beats.items() if t.done()]:
                        del self._beats[agent_id]
                    for held in list(self._held.values()):
                        if held.next_due <= now and held.agent_id not in self._beats:
                            self._beats[held.agent_id] = loop.create_task(
                                self._beat_in_background(held), name=f"heartbeat {held.agent_id}"
                            )
                    if self._store is not None and self._seen_every_s > 0 and now >= seen_due:
                        seen_due = now + self._seen_every_s
                        self._start_seen_record()
                except Exception as exc:  # keep beating whatever happens
                    self._log.exception("heartbeat_loop_error", error=repr(exc))
                await asyncio.sleep(tick)
        finally:
            seen, self._seen_task = self._seen_task, None
            if seen is not None:
                seen.cancel()

    def _start_seen_record(self) -> None:
        """Tell the store which held agents are alive, in a task of its own."""
        if self._seen_task is not None and not self._seen_task.done():
            return  # the previous call is still running: skip this round, never pile up
        oldest = _now() - self._ttl_s
        alive = [
            held.agent_id
            for held in self._held.values()
            if held.renewed_at is not None and held.renewed_at > oldest
        ]
        if alive:
            self._seen_task = asyncio.get_running_loop().create_task(
                self._record_seen(alive), name="registry-seen"
            )

    async def _record_seen(self, alive: list[AgentId]) -> None:
        assert self._store is not None
        try:
            await self._store.record_seen(alive)
        except Exception as exc:  # advisory: the next round tries again
            self._log.warning("store_seen_failed", agents=len(alive), error=repr(exc))

    async def _beat_in_background(self, held: _Held) -> None:
        started = _now()
        try:
            await self._beat_once(held)
        except StaleRegistrationError as exc:
            await self._on_stale(held, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            held.next_due = _now() + min(self._interval_s / 2, 1.0)
            self._log.warning(
                "heartbeat_failed", agent=str(held.agent_id), error=repr(exc), will_retry=True
            )
        else:
            held.next_due = started + self._interval_s

    async def _on_stale(self, held: _Held, exc: StaleRegistrationError) -> None:
        agent_id = held.agent_id
        if self._held.get(agent_id) is not held:
            return  # deregistered or registered again meanwhile
        if not (isinstance(exc, RegistrationExpiredError) and self._auto_reregister):
            self._drop(held)
            self._log.warning("registration_lost", agent=str(agent_id), reason=exc.reason)
            return
        async with self._locked(agent_id):
            if self._held.get(agent_id) is not held:
                return
            fresh = _Held(
                agent_id=agent_id,
                owner=uuid.uuid4().hex,
                name=held.name,
                capabilities=held.capabilities,
                metadata_json=held.metadata_json,
                status=held.status,
                agent=held.agent,
                next_due=0.0,
                last_state_save=held.last_state_save,
            )
            try:
                await self._write_registration(fresh, takeover=False)
            except AgentAlreadyRegisteredError:
                self._drop(held)
                self._log.warning("registration_lost", agent=str(agent_id), reason="taken")
                return
            except Exception as error:
                held.next_due = _now() + min(self._interval_s / 2, 1.0)
                self._log.warning("reregister_failed", agent=str(agent_id), error=repr(error))
                return
            self._held[agent_id] = fresh
        self._log.warning("reregistered_after_expiry", agent=str(agent_id))

    async def _beat_once(self, held: _Held) -> datetime:
        status, snapshot_json = await self._snapshot(held)
        state = await self._export_state(held, wait_s=self._hook_timeout_s, periodic=True)
        reply = await self._heartbeat_script(
            held, status=status, snapshot_json=snapshot_json, state=state
        )
        if state is not None:
            held.last_state_save = _now()
        expires = ms_to_datetime(reply[2])
        assert expires is not None
        held.expires_at = expires
        held.renewed_at = _now()
        return expires

    async def _heartbeat_script(
        self,
        held: _Held,
        *,
        status: str | None = None,
        snapshot_json: str | None = None,
        state: str | None = None,
    ) -> list[Any]:
        agent_id = held.agent_id
        keys = [
            self._keys.registry_agent(agent_id),
            self._keys.registry_liveness,
            self._keys.registry_events,
            self._keys.registry_state(agent_id),
        ]
        args: list[Any] = [
            str(agent_id),
            held.owner,
            self._ttl_ms,
            status or "",
            0 if snapshot_json is None else 1,
            snapshot_json or "",
            0 if state is None else 1,
            state or "",
            self._retention_ms,
            self._events_max_len,
            self._keys.registry_capability(""),
            self._keys.registry_type(""),
        ]
        reply: list[Any] = await self._call(
            "registry_heartbeat",
            lambda: self._scripts.run("registry_heartbeat", keys, args),
            retry=True,
        )
        outcome = text(reply[0])
        if outcome == "ok":
            return reply
        if outcome == "expired":
            raise RegistrationExpiredError(str(agent_id))
        raise StaleRegistrationError(
            str(agent_id), "replaced" if outcome == "replaced" else "deregistered"
        )

    async def _snapshot(self, held: _Held) -> tuple[str | None, str | None]:
        hook = getattr(held.agent, "status_snapshot", None) if held.agent is not None else None
        if not callable(hook):
            return None, None
        try:
            value = await _call_hook(hook, self._hook_timeout_s)
            status, snapshot = snapshot_parts(value)
            snapshot_json = (
                None
                if snapshot is None
                else dump_json(snapshot, f"status snapshot of {held.agent_id}", _MAX_METADATA_BYTES)
            )
        except TimeoutError:
            self._log.warning(
                "status_snapshot_slow", agent=str(held.agent_id), timeout_s=self._hook_timeout_s
            )
            return None, None
        except Exception as exc:
            self._log.warning("status_snapshot_failed", agent=str(held.agent_id), error=repr(exc))
            return None, None
        if status is not None:
            held.status = status
        return status, snapshot_json

    async def _export_state(
        self, held: _Held, *, wait_s: float | None, periodic: bool = False
    ) -> str | None:
        exporter = getattr(held.agent, "export_state", None) if held.agent is not None else None
        if not callable(exporter):
            return None
        if periodic and (
            self._save_every_s <= 0 or _now() - held.last_state_save < self._save_every_s
        ):
            return None
        try:
            value = await _call_hook(exporter, wait_s)
            return dump_json(value, f"state of {held.agent_id}", self._max_state_bytes)
        except TimeoutError:
            self._log.warning("export_state_slow", agent=str(held.agent_id), timeout_s=wait_s)
        except Exception as exc:
            self._log.error("export_state_failed", agent=str(held.agent_id), error=repr(exc))
        return None

    # --- reading ------------------------------------------------------------------------

    async def get(self, agent_id: AgentId) -> AgentRecord | None:
        """The record of ``agent_id``, or None when it is not registered.

        The record of a registration that expired is kept (``alive=False``) for
        ``state_retention_s``; a deregistered agent has none.
        """
        records = await self._read("ids", [], [str(agent_id)], alive_only=False)
        return records[0] if records else None

    async def list_registered(self) -> list[AgentRecord]:
        """Every registration in the liveness set, sorted by id, in one round trip.

        Each carries ``alive``: a registration whose liveness expired reads
        ``alive=False`` until a reaper (:meth:`reap_expired`) removes it from the list.
        """
        records = await self._read("all", [], [], alive_only=False)
        return sorted(records, key=lambda r: str(r.agent_id))

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
        sets: list[str] = []
        if type is not None:
            sets.append(self._keys.registry_type(_query_name("type", type)))
        if capability is not None:
            sets.append(self._keys.registry_capability(_query_name("capability", capability)))
        wanted_type: CapabilityType | None = None
        if capability_type is not None:
            try:
                wanted_type = CapabilityType(capability_type)
            except ValueError:
                raise ConfigurationError(
                    f"unknown capability type {capability_type!r}; use one of "
                    f"{', '.join(t.value for t in CapabilityType)}"
                ) from None
        if sets:
            records = await self._read("sets", sets, [], alive_only=alive_only)
        else:
            records = await self._read("all", [], [], alive_only=alive_only)
        if wanted_type is not None:
            records = [
                r
                for r in records
                if any(
                    c.type == wanted_type and (capability is None or c.name == capability)
                    for c in r.capabilities
                )
            ]
        return sorted(records, key=lambda r: str(r.agent_id))

    async def _read(
        self, mode: str, sets: list[str], ids: list[str], *, alive_only: bool
    ) -> list[AgentRecord]:
        keys = [self._keys.registry_liveness, *sets]
        args: list[Any] = [mode, 1 if alive_only else 0, self._keys.registry_agent_head, *ids]
        reply = await self._call(
            "registry_read", lambda: self._scripts.run("registry_read", keys, args), retry=True
        )
        return decode_records(list(reply))

    # --- failure detection --------------------------------------------------------------

    async def reap_expired(self) -> list[AgentId]:
        """Expire every registration whose liveness passed; the ids expired by this call.

        Atomic per batch: each expired registration leaves the liveness set and the
        type/capability indexes, keeps its record (``alive=False``) for
        ``state_retention_s``, and is reported by exactly one ``expired`` event however
        many reapers run at once.
        """
        keys = [self._keys.registry_liveness, self._keys.registry_events]
        args: list[Any] = [
            self._reap_batch,
            self._retention_ms,
            self._events_max_len,
            self._keys.registry_agent_head,
            self._keys.registry_capability(""),
            self._keys.registry_type(""),
        ]
        expired: list[AgentId] = []
        while True:
            reply = await self._call(
                "registry_reap", lambda: self._scripts.run("registry_reap", keys, args), retry=True
            )
            for raw in list(reply)[1:]:
                try:
                    expired.append(AgentId.parse(text(raw)))
                except ValueError:
                    continue
            if not int(reply[0]):
                break
        if expired:
            self._log.warning("registrations_expired", agents=[str(a) for a in expired])
        return expired

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
        target = coordinator if coordinator is not None else self._coordinator
        if target is None:
            raise ConfigurationError(
                "recover_failed needs a coordinator: pass one here or to the registry"
            )
        released: dict[AgentId, int] = {}
        for agent_id in await self.reap_expired():
            count = await self._release(target, agent_id, reason="expired")
            if count is not None:
                released[agent_id] = count
        return released

    async def _release(
        self, target: LeaseReleaser, agent_id: AgentId, *, reason: str
    ) -> int | None:
        try:
            count = await target.release_leases(agent_id)
        except Exception as exc:
            self._log.error(
                "lease_release_failed", agent=str(agent_id), reason=reason, error=repr(exc)
            )
            return None
        self._log.info("leases_released", agent=str(agent_id), reason=reason, count=count)
        return count

    # --- events -------------------------------------------------------------------------

    async def events(self, since: str | None = None, limit: int = 100) -> list[RegistryEvent]:
        """Up to ``limit`` events after the event id ``since`` (from the oldest by default).

        Raises:
            ConfigurationError: ``limit`` is not positive or ``since`` is not an event id.
        """
        start = _check_since(since) if since is not None else "0-0"
        if limit <= 0:
            raise ConfigurationError(f"limit must be > 0, got {limit}")
        reply = await self._xread(start, limit, None)
        return [event for _, event in decode_events(reply) if event is not None]

    async def follow(
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
        if not block_s > 0 or limit <= 0:
            raise ConfigurationError(f"block_s and limit must be > 0, got {block_s}, {limit}")
        last = _check_since(since) if since is not None else await self._last_event_id()
        block_ms = max(1, round(block_s * 1000))
        while True:
            reply = await self._xread(last, limit, block_ms)
            for entry_id, event in decode_events(reply):
                last = entry_id
                if event is not None:
                    yield event

    async def _xread(self, start: str, limit: int, block_ms: int | None) -> Any:
        stream = self._keys.registry_events
        return await self._call(
            "registry_events",
            lambda: self._redis.xread({stream: start}, count=limit, block=block_ms),
            retry=True,
        )

    async def _last_event_id(self) -> str:
        stream = self._keys.registry_events
        entries = await self._call(
            "registry_events",
            lambda: self._redis.xrevrange(stream, "+", "-", count=1),
            retry=True,
        )
        return text(entries[0][0]) if entries else "0-0"

    # --- plumbing -----------------------------------------------------------------------

    def _held_or_raise(self, agent_id: AgentId) -> _Held:
        held = self._held.get(agent_id)
        if held is None:
            raise StaleRegistrationError(str(agent_id), "not_registered")
        return held

    def _drop(self, held: _Held) -> None:
        if self._held.get(held.agent_id) is held:
            del self._held[held.agent_id]

    def _cancel_beat(self, agent_id: AgentId) -> None:
        # The script would refuse the beat anyway; cancelling saves a round trip.
        beat = self._beats.pop(agent_id, None)
        if beat is not None and beat is not asyncio.current_task():
            beat.cancel()

    @asynccontextmanager
    async def _locked(self, agent_id: AgentId) -> AsyncGenerator[None]:
        # One lock per agent id, dropped when unused, so that register/deregister of one
        # id in this process run in call order without a lock table that only grows.
        entry = self._locks.get(agent_id)
        if entry is None:
            entry = self._locks[agent_id] = _LockEntry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[agent_id]

    async def _call(
        self, operation: str, fn: Callable[[], Awaitable[T]], *, retry: bool = False
    ) -> T:
        """Run a Redis call under the guard; Redis failures become typed errors."""
        try:
            return await self._guard.run(operation, fn, retry=retry)
        except (TimeoutError, RedisError, OSError) as exc:
            raise RegistryUnavailableError(f"{operation} failed: Redis error: {exc}") from exc


def _now() -> float:
    # Local scheduling only (when to beat next); never stored or compared across hosts.
    return asyncio.get_running_loop().time()


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def _call_hook(hook: Callable[[], Any], wait_s: float | None) -> Any:
    value = hook()
    if not inspect.isawaitable(value):
        return value
    if wait_s is None:
        return await value
    return await asyncio.wait_for(value, wait_s)


def _id_of(agent: AgentId | RegistrableAgent) -> AgentId:
    if isinstance(agent, AgentId):
        return agent
    agent_id = getattr(agent, "agent_id", None)
    if not isinstance(agent_id, AgentId):
        raise RegistrationValidationError(f"{agent!r} is neither an AgentId nor has one")
    return agent_id


def _query_name(kind: str, value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise ConfigurationError(
            f"invalid {kind} {value!r}: use 1-128 characters from letters, digits, '_', '.', "
            "'-', starting with a letter or digit"
        )
    return value


def _check_since(since: str) -> str:
    if not _STREAM_ID_RE.fullmatch(since):
        raise ConfigurationError(
            f"invalid event id {since!r}: pass the id of a RegistryEvent (such as "
            "'1700000000000-0')"
        )
    return since
