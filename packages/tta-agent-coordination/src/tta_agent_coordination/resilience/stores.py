"""Where circuit-breaker state lives: in this process, or shared through Redis.

A store owns the state machine's *transitions*; the
:class:`~tta_agent_coordination.resilience.CircuitBreaker` asks it to admit a call
(:meth:`BreakerStore.acquire`) and tells it how the call ended
(:meth:`BreakerStore.record`). Every admission carries the state's *generation*, which
grows on every transition, so the outcome of a call admitted in an earlier state (a
probe of an earlier half-open period, a success admitted before the breaker opened)
never changes a later one.

* :class:`InMemoryBreakerStore` keeps the state in a dict, per breaker name. Its
  operations never suspend, so they are atomic on the event loop.
* :class:`RedisBreakerStore` keeps it in one Redis hash per breaker
  (``KeySpace(prefix).breaker_state(name)``) and changes it with Lua scripts that read
  the Redis server clock, so every process sees the same state. Each operation is one
  EVALSHA bounded by ``timeout_s``; after a failure the store refuses at once for
  ``retry_interval_s`` (raising :class:`BreakerStoreUnavailableError`), and the breaker
  falls back to its own in-process state meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
import structlog

from tta_agent_coordination.errors import ConfigurationError, CoordinationError
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.lua import ScriptSet
from tta_agent_coordination.resilience.config import CircuitBreakerConfig

__all__ = [
    "Admission",
    "BreakerSnapshot",
    "BreakerStore",
    "BreakerStoreUnavailableError",
    "CircuitState",
    "InMemoryBreakerStore",
    "Outcome",
    "RedisBreakerStore",
]

_log = structlog.get_logger("tta_agent_coordination.resilience")


class CircuitState(StrEnum):
    """The three states of a circuit breaker."""

    CLOSED = "closed"
    """Calls flow; failures are counted."""
    OPEN = "open"
    """Calls are refused at once until ``timeout_seconds`` have passed."""
    HALF_OPEN = "half_open"
    """A few probe calls are let through to test whether the dependency is back."""


class Outcome(StrEnum):
    """How an admitted call ended, as far as the breaker is concerned."""

    SUCCESS = "s"
    FAILURE = "f"
    NEUTRAL = "n"
    """Not counted (an ignored error, a cancellation); a probe's slot is freed."""


class BreakerStoreUnavailableError(CoordinationError):
    """A shared breaker store could not be reached, or answered too slowly.

    Breakers handle it themselves by falling back to in-process state; it only
    reaches callers who use a store directly.
    """


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """The state of one breaker as a store last reported it."""

    state: CircuitState
    generation: int
    failures: int = 0
    """Consecutive failures counted while closed."""
    retry_after: float | None = None
    """Seconds until an open breaker half-opens (None unless open)."""


CLOSED_SNAPSHOT = BreakerSnapshot(CircuitState.CLOSED, 0)


@dataclass(frozen=True, slots=True)
class Admission:
    """A store's answer to :meth:`BreakerStore.acquire`."""

    allowed: bool
    probe: bool
    """True when the call holds one of the half-open probe slots."""
    snapshot: BreakerSnapshot


class BreakerStore(ABC):
    """Where breakers keep their state; implementations make each method atomic."""

    shared: bool = True
    """True when other processes see the same state (the breaker then keeps a local
    fallback for when the store cannot be reached)."""

    @abstractmethod
    async def acquire(self, name: str, config: CircuitBreakerConfig, now: float) -> Admission:
        """Admit a call, or refuse it; half-opens an open breaker whose timeout passed.

        ``now`` is the breaker's monotonic clock (a shared store uses its own clock).
        """

    @abstractmethod
    async def record(
        self,
        name: str,
        config: CircuitBreakerConfig,
        generation: int | None,
        probe: bool,
        outcome: Outcome,
        now: float,
    ) -> BreakerSnapshot:
        """Apply the outcome of a call admitted in ``generation`` (stale ones change nothing).

        ``generation=None`` applies the outcome to the current state (a call whose
        admission came from another store).
        """

    @abstractmethod
    async def reset(self, name: str, now: float) -> BreakerSnapshot:
        """Close the breaker and clear its counts."""


@dataclass(slots=True)
class _Machine:
    state: CircuitState = CircuitState.CLOSED
    generation: int = 0
    failures: int = 0
    window: deque[bool] = field(default_factory=lambda: deque[bool]())
    opened_until: float = 0.0
    successes: int = 0
    in_flight: int = 0
    probe_deadline: float = 0.0

    def snapshot(self, now: float) -> BreakerSnapshot:
        retry_after = max(self.opened_until - now, 0.0) if self.state is CircuitState.OPEN else None
        return BreakerSnapshot(self.state, self.generation, self.failures, retry_after)

    def move(self, state: CircuitState, now: float, config: CircuitBreakerConfig) -> None:
        self.state = state
        self.generation += 1
        self.failures = 0
        self.window.clear()
        self.successes = 0
        self.in_flight = 0
        if state is CircuitState.OPEN:
            self.opened_until = now + config.timeout_seconds

    def acquire(self, config: CircuitBreakerConfig, now: float) -> Admission:
        if self.state is CircuitState.OPEN and now >= self.opened_until:
            self.move(CircuitState.HALF_OPEN, now, config)
        if self.state is CircuitState.CLOSED:
            return Admission(True, False, self.snapshot(now))
        if self.state is CircuitState.HALF_OPEN:
            if self.in_flight >= config.half_open_max_calls and now >= self.probe_deadline:
                self.in_flight = 0  # the probes in flight were abandoned (crashed holder)
            if self.in_flight < config.half_open_max_calls:
                self.in_flight += 1
                self.probe_deadline = now + config.probe_lease_s
                return Admission(True, True, self.snapshot(now))
        return Admission(False, False, self.snapshot(now))

    def record(
        self,
        config: CircuitBreakerConfig,
        generation: int | None,
        probe: bool,
        outcome: Outcome,
        now: float,
    ) -> BreakerSnapshot:
        if generation is not None and generation != self.generation:
            return self.snapshot(now)
        if self.state is CircuitState.CLOSED:
            if outcome is not Outcome.NEUTRAL:
                failed = outcome is Outcome.FAILURE
                self.failures = self.failures + 1 if failed else 0
                if config.window_size is not None:
                    if self.window.maxlen != config.window_size:
                        self.window = deque(self.window, maxlen=config.window_size)
                    self.window.append(failed)
                if failed and self._should_trip(config):
                    self.move(CircuitState.OPEN, now, config)
        elif self.state is CircuitState.HALF_OPEN:
            if probe and generation is not None:
                self.in_flight = max(self.in_flight - 1, 0)
            if outcome is Outcome.FAILURE:
                self.move(CircuitState.OPEN, now, config)
            elif outcome is Outcome.SUCCESS:
                self.successes += 1
                if self.successes >= config.success_threshold:
                    self.move(CircuitState.CLOSED, now, config)
        return self.snapshot(now)

    def _should_trip(self, config: CircuitBreakerConfig) -> bool:
        if self.failures >= config.failure_threshold:
            return True
        if config.window_size is None or len(self.window) < config.window_minimum_calls:
            return False
        return sum(self.window) / len(self.window) >= config.failure_rate_threshold


class InMemoryBreakerStore(BreakerStore):
    """State in this process only (the default).

    Breakers sharing one store and one name share one state; each operation is atomic
    (it never suspends).
    """

    shared = False

    def __init__(self) -> None:
        self._machines: dict[str, _Machine] = {}

    def _machine(self, name: str) -> _Machine:
        machine = self._machines.get(name)
        if machine is None:
            machine = self._machines[name] = _Machine()
        return machine

    def acquire_now(self, name: str, config: CircuitBreakerConfig, now: float) -> Admission:
        """Synchronous :meth:`acquire`."""
        return self._machine(name).acquire(config, now)

    def record_now(
        self,
        name: str,
        config: CircuitBreakerConfig,
        generation: int | None,
        probe: bool,
        outcome: Outcome,
        now: float,
    ) -> BreakerSnapshot:
        """Synchronous :meth:`record`."""
        return self._machine(name).record(config, generation, probe, outcome, now)

    def reset_now(self, name: str, now: float) -> BreakerSnapshot:
        """Synchronous :meth:`reset`."""
        machine = self._machine(name)
        generation = machine.generation + 1
        fresh = self._machines[name] = _Machine(generation=generation)
        return fresh.snapshot(now)

    def snapshot_now(self, name: str, now: float) -> BreakerSnapshot:
        """The current state of ``name`` (no transition is made)."""
        return self._machine(name).snapshot(now)

    def seed(self, name: str, snapshot: BreakerSnapshot, now: float) -> BreakerSnapshot:
        """Start ``name`` from a state seen elsewhere (used when a shared store is lost).

        An open state keeps its remaining time; a half-open one starts with no probes.
        """
        machine = self._machine(name)
        machine.generation += 1
        machine.state = snapshot.state
        machine.failures = snapshot.failures
        machine.window.clear()
        machine.successes = 0
        machine.in_flight = 0
        machine.opened_until = now + (snapshot.retry_after or 0.0)
        return machine.snapshot(now)

    async def acquire(self, name: str, config: CircuitBreakerConfig, now: float) -> Admission:
        """See :meth:`BreakerStore.acquire`."""
        return self.acquire_now(name, config, now)

    async def record(
        self,
        name: str,
        config: CircuitBreakerConfig,
        generation: int | None,
        probe: bool,
        outcome: Outcome,
        now: float,
    ) -> BreakerSnapshot:
        """See :meth:`BreakerStore.record`."""
        return self.record_now(name, config, generation, probe, outcome, now)

    async def reset(self, name: str, now: float) -> BreakerSnapshot:
        """See :meth:`BreakerStore.reset`."""
        return self.reset_now(name, now)


def _ms(seconds: float) -> int:
    return max(int(seconds * 1000), 1)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBreakerStore(BreakerStore):
    """State shared by every process through one Redis hash per breaker.

    Transitions are Lua scripts (``redis/scripts/breaker_*.lua``) that use the Redis
    server's clock (``TIME``) for the open-until deadline, so process clocks never
    matter. All processes using one breaker name must use the same configuration.

    Args:
        redis: an asyncio Redis client (``decode_responses`` either way).
        key_prefix: the library's key prefix (``ao`` by default, as in TTA).
        timeout_s: bound on each store call; a slower call counts as unreachable.
        retry_interval_s: after a failure, refuse at once for this long (breakers use
            local state meanwhile) before trying Redis again.
        state_ttl_s: an idle breaker's hash expires after this (at least twice a
            breaker's ``timeout_seconds``), so abandoned names leave nothing behind.
        clock: monotonic clock for ``retry_interval_s``.
    """

    shared = True

    def __init__(
        self,
        redis: aioredis.Redis,
        key_prefix: str = "ao",
        *,
        timeout_s: float = 0.25,
        retry_interval_s: float = 1.0,
        state_ttl_s: float = 86_400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not timeout_s > 0 or retry_interval_s < 0 or not state_ttl_s > 0:
            raise ConfigurationError(
                "RedisBreakerStore needs timeout_s > 0, retry_interval_s >= 0 and "
                f"state_ttl_s > 0 (got {timeout_s}, {retry_interval_s}, {state_ttl_s})"
            )
        self._keys = KeySpace(key_prefix)
        self._scripts = ScriptSet(redis)
        self.timeout_s = timeout_s
        self.retry_interval_s = retry_interval_s
        self.state_ttl_s = state_ttl_s
        self._clock = clock
        self._down_until: float | None = None

    @property
    def available(self) -> bool:
        """False while the store is refusing calls after a recent failure."""
        return self._down_until is None or self._clock() >= self._down_until

    def key(self, name: str) -> str:
        """The hash holding breaker ``name``'s state."""
        return self._keys.breaker_state(name)

    def _ttl_ms(self, config: CircuitBreakerConfig) -> int:
        return _ms(max(self.state_ttl_s, 2 * config.timeout_seconds))

    async def _run(self, script: str, name: str, args: list[Any]) -> list[Any]:
        if self._down_until is not None and self._clock() < self._down_until:
            raise BreakerStoreUnavailableError(
                f"breaker store unavailable (retrying after {self.retry_interval_s}s)"
            )
        try:
            async with asyncio.timeout(self.timeout_s):
                reply = await self._scripts.run(script, [self.key(name)], args)
        except Exception as exc:
            first = self._down_until is None
            self._down_until = self._clock() + self.retry_interval_s
            if first:
                _log.warning(
                    "breaker_store_unavailable",
                    breaker=name,
                    error=repr(exc),
                    retry_in_s=self.retry_interval_s,
                )
            raise BreakerStoreUnavailableError(
                f"breaker store call {script} for {name!r} failed: {exc!r}"
            ) from exc
        if self._down_until is not None:
            self._down_until = None
            _log.info("breaker_store_restored", breaker=name)
        return list(reply)

    @staticmethod
    def _snapshot(reply: list[Any]) -> BreakerSnapshot:
        state, generation, failures, retry_after_ms = reply[:4]
        retry = int(retry_after_ms)
        return BreakerSnapshot(
            CircuitState(_text(state)),
            int(generation),
            int(failures),
            retry / 1000 if retry >= 0 else None,
        )

    async def acquire(self, name: str, config: CircuitBreakerConfig, now: float) -> Admission:
        """See :meth:`BreakerStore.acquire` (one EVALSHA of ``breaker_acquire``)."""
        reply = await self._run(
            "breaker_acquire",
            name,
            [
                _ms(config.timeout_seconds),
                config.half_open_max_calls,
                _ms(config.probe_lease_s),
                self._ttl_ms(config),
            ],
        )
        return Admission(bool(int(reply[4])), bool(int(reply[5])), self._snapshot(reply))

    async def record(
        self,
        name: str,
        config: CircuitBreakerConfig,
        generation: int | None,
        probe: bool,
        outcome: Outcome,
        now: float,
    ) -> BreakerSnapshot:
        """See :meth:`BreakerStore.record` (one EVALSHA of ``breaker_record``)."""
        reply = await self._run(
            "breaker_record",
            name,
            [
                "" if generation is None else generation,
                outcome.value,
                int(probe),
                config.failure_threshold,
                config.window_size or 0,
                repr(config.failure_rate_threshold),
                config.window_minimum_calls,
                config.success_threshold,
                _ms(config.timeout_seconds),
                self._ttl_ms(config),
            ],
        )
        return self._snapshot(reply)

    async def reset(self, name: str, now: float) -> BreakerSnapshot:
        """See :meth:`BreakerStore.reset` (one EVALSHA of ``breaker_reset``)."""
        reply = await self._run("breaker_reset", name, [_ms(self.state_ttl_s)])
        return self._snapshot(reply)
