"""The circuit breaker's state machine: its states, the values it reports, its transitions.

Pure and synchronous (no I/O, no clock of its own): the caller passes ``now``. The
in-process store (:class:`~tta_agent_coordination.resilience.breaker_store.InMemoryBreakerStore`)
runs :class:`BreakerStateMachine` directly; the Redis store runs the same transitions in
Lua (``redis/scripts/breaker_*.lua``), so the two must change together. See
``docs/resilience.md`` for the behaviour.

Every admission carries the state's *generation*, which grows on every transition, so
the outcome of a call admitted in an earlier state (a probe of an earlier half-open
period, a success admitted before the breaker opened) never changes a later one.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from tta_agent_coordination.resilience.config import CircuitBreakerConfig

__all__ = [
    "CLOSED_SNAPSHOT",
    "Admission",
    "BreakerSnapshot",
    "BreakerStateMachine",
    "CircuitState",
    "Outcome",
    "outcome_of",
]


class CircuitState(StrEnum):
    """The three states of a circuit breaker."""

    CLOSED = "closed"
    """Calls flow; failures are counted."""
    OPEN = "open"
    """Calls are refused at once until the open time has passed (``timeout_seconds``,
    growing on openings in a row up to ``max_timeout_seconds``)."""
    HALF_OPEN = "half_open"
    """A few probe calls are let through to test whether the dependency is back."""


class Outcome(StrEnum):
    """How an admitted call ended, as far as the breaker is concerned."""

    SUCCESS = "s"
    FAILURE = "f"
    NEUTRAL = "n"
    """Not counted (an ignored error, a cancellation); a probe's slot is freed."""
    TRIP = "t"
    """The dependency is known to be down (its health check failed after a failure):
    a closed breaker opens at once, whatever its count; a half-open one reopens."""


def outcome_of(config: CircuitBreakerConfig, exc: BaseException) -> Outcome:
    """How a call (or a health check) that raised ``exc`` ended, by ``config``'s lists."""
    counted = config.counts_as_failure(exc)
    if counted is None:
        return Outcome.NEUTRAL
    return Outcome.FAILURE if counted else Outcome.SUCCESS


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
"""A breaker that was never used: closed, generation 0."""


@dataclass(frozen=True, slots=True)
class Admission:
    """A store's answer to ``BreakerStore.acquire``."""

    allowed: bool
    probe: bool
    """True when the call holds one of the half-open probe slots."""
    snapshot: BreakerSnapshot


@dataclass(slots=True)
class BreakerStateMachine:
    """The state of one breaker and its transitions (``now`` is the caller's clock).

    Not thread-safe and never suspends: an asyncio caller gets atomic transitions for free.
    """

    state: CircuitState = CircuitState.CLOSED
    generation: int = 0
    """Grows on every transition; outcomes of calls admitted in another one are stale."""
    failures: int = 0
    """Consecutive failures while closed."""
    window: deque[bool] = field(default_factory=lambda: deque[bool]())
    """The most recent outcomes while closed (True = failure), when a window is set."""
    opened_until: float = 0.0
    """When an open breaker half-opens."""
    successes: int = 0
    """Successful probes in this half-open period."""
    in_flight: int = 0
    """Probes running now (half-open)."""
    probe_deadline: float = 0.0
    """After this, probe slots still held are taken to be abandoned and are reclaimed."""
    open_streak: int = 0
    """Openings in a row; the open time grows with it (``CircuitBreakerConfig.open_seconds``)."""
    closed_at: float = -math.inf
    """When the breaker last closed: an opening ``longest_open_s`` after it starts a new
    streak."""

    def snapshot(self, now: float) -> BreakerSnapshot:
        """The state as a :class:`BreakerSnapshot` (no transition is made)."""
        retry_after = max(self.opened_until - now, 0.0) if self.state is CircuitState.OPEN else None
        return BreakerSnapshot(self.state, self.generation, self.failures, retry_after)

    def move(self, state: CircuitState, now: float, config: CircuitBreakerConfig) -> None:
        """Enter ``state``: a new generation with cleared counts.

        Opening continues the streak of openings (a longer open time) unless the breaker
        had stayed closed for ``longest_open_s``; closing notes the time.
        """
        previous = self.state
        self.state = state
        self.generation += 1
        self.failures = 0
        self.window.clear()
        self.successes = 0
        self.in_flight = 0
        if state is CircuitState.OPEN:
            if previous is CircuitState.CLOSED and now - self.closed_at >= config.longest_open_s:
                self.open_streak = 0
            self.open_streak += 1
            self.opened_until = now + config.open_seconds(self.open_streak)
        elif state is CircuitState.CLOSED:
            self.closed_at = now

    def acquire(self, config: CircuitBreakerConfig, now: float) -> Admission:
        """Admit a call or refuse it; an open breaker whose timeout passed half-opens."""
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
        """Apply the outcome of a call admitted in ``generation`` (stale ones change nothing).

        ``generation=None`` applies it to the current state, whatever that is.
        """
        if generation is not None and generation != self.generation:
            return self.snapshot(now)
        if self.state is CircuitState.CLOSED:
            if outcome is Outcome.TRIP:
                self.move(CircuitState.OPEN, now, config)
            elif outcome is not Outcome.NEUTRAL:
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
            if outcome is Outcome.FAILURE or outcome is Outcome.TRIP:
                self.move(CircuitState.OPEN, now, config)
            elif outcome is Outcome.SUCCESS:
                self.successes += 1
                if self.successes >= config.success_threshold:
                    self.move(CircuitState.CLOSED, now, config)
        return self.snapshot(now)

    def seed(self, snapshot: BreakerSnapshot, now: float) -> BreakerSnapshot:
        """Start from a state seen elsewhere, in a new generation.

        An open state keeps its remaining time; a half-open one starts with no probes.
        """
        self.generation += 1
        self.state = snapshot.state
        self.failures = snapshot.failures
        self.window.clear()
        self.successes = 0
        self.in_flight = 0
        self.opened_until = now + (snapshot.retry_after or 0.0)
        return self.snapshot(now)

    def _should_trip(self, config: CircuitBreakerConfig) -> bool:
        if self.failures >= config.failure_threshold:
            return True
        if config.window_size is None or len(self.window) < config.window_minimum_calls:
            return False
        return sum(self.window) / len(self.window) >= config.failure_rate_threshold
