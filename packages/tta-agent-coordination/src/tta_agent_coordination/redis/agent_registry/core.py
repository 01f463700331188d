"""What the parts of one ``RedisAgentRegistry`` share.

:class:`RegistryCore` holds the client, the key space, the config, the guard and the
scripts, the registrations this instance holds (with a lock per agent id and the beat in
flight per agent) and the store writer. The parts (registration, heartbeats, reads,
reaper, events) each get it and keep no state of their own beyond it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from redis.exceptions import RedisClusterException, RedisError

from tta_agent_coordination.agents import AgentCapability
from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import (
    CoordinationError,
    RegistryUnavailableError,
    StaleRegistrationError,
)
from tta_agent_coordination.interfaces import CallGuard, Ownership
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.redis.agent_registry.config import RegistryConfig
from tta_agent_coordination.redis.agent_registry.scripts import ScriptCall
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.lua import ScriptSet
from tta_agent_coordination.store import AgentEvent, Durability, MessageStore, StoreWriter

__all__ = ["HeldRegistration", "LeaseReleaser", "RegistryCore", "fence_clock", "loop_time"]

T = TypeVar("T")


class _MayNameUndeclaredSets(Protocol):
    @property
    def undeclared(self) -> tuple[str, ...]: ...


R = TypeVar("R", bound=_MayNameUndeclaredSets)

_MAX_DECLARE_ROUNDS = 8
"""Runs of one script, each declaring more capability sets, before giving up."""


class LeaseReleaser(Protocol):
    """What failure hand-over needs from a coordinator (``RedisMessageCoordinator`` fits)."""

    async def release_leases(self, agent_id: AgentId) -> int:
        """Return every leased message of ``agent_id``'s queue to its ready stream."""
        ...


def loop_time() -> float:
    """The event loop's clock: local scheduling only, never stored or compared across hosts."""
    return asyncio.get_running_loop().time()


_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def fence_clock() -> float:
    """Seconds on the clock that bounds how long a registration is known to be live.

    ``CLOCK_BOOTTIME`` where there is one (Linux): monotonic, and unlike the event
    loop's clock it keeps counting while the host is suspended, so a laptop or VM that
    slept past the TTL does not think its registration is still live. Elsewhere the
    monotonic clock. Local only: never stored or compared across hosts.
    """
    if _BOOTTIME is not None:
        return time.clock_gettime(_BOOTTIME)
    return time.monotonic()


@dataclass(eq=False)
class HeldRegistration:
    """A registration this registry instance holds: its lease token and how to renew it."""

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
    # Fence-clock time until which the registration is surely live: when the call that
    # last renewed it was sent, plus the TTL (Redis applied it later, so it expires
    # later). 0 until the first write. See ``RegistryCore.ownership``.
    valid_until: float = 0.0
    # An immediate beat was asked for since the last renewal that succeeded: once is
    # enough; failed beats are retried on the usual schedule (no storm while Redis is
    # down and a worker keeps asking).
    verify_requested: bool = False

    @property
    def capability_names(self) -> list[str]:
        """The names of the registration's capabilities (its index sets)."""
        return [c.name for c in self.capabilities]

    def renewal(self) -> HeldRegistration:
        """A new registration of the same agent under a new lease token."""
        return HeldRegistration(
            agent_id=self.agent_id,
            owner=uuid.uuid4().hex,
            name=self.name,
            capabilities=self.capabilities,
            metadata_json=self.metadata_json,
            status=self.status,
            agent=self.agent,
            next_due=0.0,
            last_state_save=self.last_state_save,
        )


def _no_verifier(held: HeldRegistration) -> None:
    """Nothing verifies until the heartbeats are set up: the registration stays unverified."""


@dataclass(eq=False)
class _LockEntry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class RegistryCore:
    """The shared plumbing of one registry: Redis access and the registrations it holds."""

    def __init__(
        self,
        redis: RedisClient,
        keys: KeySpace,
        config: RegistryConfig,
        *,
        guard: CallGuard,
        coordinator: LeaseReleaser | None,
        store: MessageStore | None,
        durability: Durability | str,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.config = config
        self.guard = guard
        self.coordinator = coordinator
        self.store = store
        self.writer: StoreWriter[AgentEvent] | None = (
            StoreWriter(store.record_agents, durability, name="agents")
            if store is not None
            else None
        )
        self.scripts = ScriptSet(redis)
        # The logger keeps the name it had before the registry became a package.
        self.log = get_logger("tta_agent_coordination.redis.registry", prefix=keys.prefix)
        self.held: dict[AgentId, HeldRegistration] = {}
        self.beats: dict[AgentId, asyncio.Task[None]] = {}
        """The beat in flight of each held agent (at most one)."""
        self._locks: dict[AgentId, _LockEntry] = {}
        self.verify_soon: Callable[[HeldRegistration], None] = _no_verifier
        """Asks the heartbeat task to renew a registration at once (set by ``Heartbeats``)."""
        # A lease request sent just before the registration runs out may reach Redis
        # just after: stop leasing this much earlier (but never before the next beat
        # is due, when the interval is close to the TTL).
        interval = config.resolved_heartbeat_interval_s
        self.fence_margin_s = min(interval / 2, 1.0, (config.heartbeat_ttl_s - interval) / 2)

    # --- held registrations -------------------------------------------------------------

    def held_or_raise(self, agent_id: AgentId) -> HeldRegistration:
        """The registration of ``agent_id`` this instance holds.

        Raises:
            StaleRegistrationError: it holds none (``reason="not_registered"``).
        """
        held = self.held.get(agent_id)
        if held is None:
            raise StaleRegistrationError(str(agent_id), "not_registered")
        return held

    def ownership(self, agent_id: AgentId) -> Ownership:
        """``HELD``, ``UNVERIFIED`` (asking for a heartbeat at once) or ``LOST``; local only."""
        held = self.held.get(agent_id)
        if held is None:
            return Ownership.LOST
        if fence_clock() < held.valid_until - self.fence_margin_s:
            return Ownership.HELD
        self.verify_soon(held)
        return Ownership.UNVERIFIED

    def drop(self, held: HeldRegistration) -> None:
        """Forget ``held`` unless a newer registration of the id replaced it already."""
        if self.held.get(held.agent_id) is held:
            del self.held[held.agent_id]

    def cancel_beat(self, agent_id: AgentId) -> None:
        """Cancel the beat in flight of ``agent_id``, unless that is the caller itself."""
        # The script would refuse the beat anyway; cancelling saves a round trip.
        beat = self.beats.pop(agent_id, None)
        if beat is not None and beat is not asyncio.current_task():
            beat.cancel()

    @asynccontextmanager
    async def locked(self, agent_id: AgentId) -> AsyncGenerator[None]:
        """Run register/deregister of one agent id in this process in call order."""
        # One lock per agent id, dropped when unused, so that the lock table never grows.
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

    # --- Redis --------------------------------------------------------------------------

    async def call(
        self, operation: str, fn: Callable[[], Awaitable[T]], *, retry: bool = False
    ) -> T:
        """Run a Redis call under the guard; Redis failures become typed errors.

        Raises:
            RegistryUnavailableError: Redis failed (after the guard's retries).
        """
        try:
            return await self.guard.run(operation, fn, retry=retry)
        except (TimeoutError, RedisError, RedisClusterException, OSError) as exc:
            raise RegistryUnavailableError(f"{operation} failed: Redis error: {exc}") from exc

    async def run(self, call: ScriptCall) -> Any:
        """Run one script (every registry script is safe to repeat); what it returned."""
        return await self.call(
            call.script,
            lambda: self.scripts.run(call.script, call.keys, call.args),
            retry=True,
        )

    async def run_declaring(
        self,
        build: Callable[[Sequence[str]], ScriptCall],
        parse: Callable[[Any], R],
        capability_sets: Sequence[str],
    ) -> R:
        """Run a script that may find capability sets its caller did not declare.

        ``build(names)`` makes the call declaring the sets of ``names``; while the result
        (``parse``d) names ``undeclared`` capabilities (nothing was changed), they are
        added and the script runs again.

        Raises:
            CoordinationError: the record's capabilities kept changing under us.
        """
        declared = list(capability_sets)
        call = build(declared)
        for _ in range(_MAX_DECLARE_ROUNDS):
            result = parse(await self.run(call))
            if not result.undeclared:
                return result
            declared += [name for name in result.undeclared if name not in declared]
            call = build(declared)
        raise CoordinationError(
            f"{call.script}: the record's capabilities kept changing; repeat the call"
        )

    # --- the store ----------------------------------------------------------------------

    async def record(self, event: AgentEvent) -> None:
        """Hand ``event`` to the store, if the registry has one (the agent directory)."""
        if self.writer is not None:
            await self.writer.record([event])
