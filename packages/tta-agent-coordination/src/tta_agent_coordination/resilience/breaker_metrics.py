"""What a circuit breaker reports: its counters, its state changes, its listeners.

:class:`BreakerRecorder` keeps them for one breaker; :class:`CircuitBreakerMetrics` is
the frozen snapshot ``CircuitBreaker.metrics`` returns.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from tta_agent_coordination.resilience.breaker_state import CircuitState, Outcome
from tta_agent_coordination.resilience.health_check import HealthCheck

__all__ = ["BreakerListener", "BreakerRecorder", "CircuitBreakerMetrics", "StateTransition"]

BreakerListener = Callable[[str, CircuitState, CircuitState], object]
"""A state-change listener, called as ``listener(name, old_state, new_state)``."""


@dataclass(frozen=True, slots=True)
class StateTransition:
    """One state change a breaker observed; ``at`` is the breaker's clock."""

    from_state: CircuitState
    to_state: CircuitState
    at: float


@dataclass(frozen=True, slots=True)
class CircuitBreakerMetrics:
    """Counters of one breaker since it was created (``reset()`` does not clear them).

    ``calls`` counts calls that were admitted and ran; refused calls are in
    ``rejections`` only (among them probes refused because the health check failed).
    Each admitted call ends in exactly one of ``successes``, ``failures`` (slow calls and
    timeouts included) or ``ignored``.
    """

    name: str
    state: CircuitState
    calls: int
    successes: int
    failures: int
    ignored: int
    rejections: int
    slow_calls: int
    timeouts: int
    transition_count: int
    transitions: tuple[StateTransition, ...]
    """The most recent transitions, oldest first (bounded)."""
    health_checks: int = 0
    """Health checks run (0 without a ``health_check``)."""
    health_check_failures: int = 0
    """Health checks that found the dependency not answering."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of the metrics."""
        return {
            "name": self.name,
            "state": self.state.value,
            "calls": self.calls,
            "successes": self.successes,
            "failures": self.failures,
            "ignored": self.ignored,
            "rejections": self.rejections,
            "slow_calls": self.slow_calls,
            "timeouts": self.timeouts,
            "transition_count": self.transition_count,
            "transitions": [
                {"from": t.from_state.value, "to": t.to_state.value, "at": t.at}
                for t in self.transitions
            ],
            "health_checks": self.health_checks,
            "health_check_failures": self.health_check_failures,
        }


class BreakerRecorder:
    """The counters, recent transitions and listeners of one breaker.

    Args:
        name: the breaker's name (passed to listeners).
        max_transitions_kept: how many recent transitions are kept.
        log: the breaker's bound logger.
    """

    def __init__(self, name: str, max_transitions_kept: int, log: Any) -> None:
        self._name = name
        self._log: structlog.typing.FilteringBoundLogger = log
        self.listeners: list[BreakerListener] = []
        self.calls = self.successes = self.failures = self.ignored = 0
        self.rejections = self.slow_calls = self.timeouts = 0
        self.transition_count = 0
        self.transitions: deque[StateTransition] = deque(maxlen=max_transitions_kept)

    def count(self, outcome: Outcome) -> None:
        """Count how an admitted call ended."""
        if outcome is Outcome.SUCCESS:
            self.successes += 1
        elif outcome is Outcome.FAILURE:
            self.failures += 1
        else:
            self.ignored += 1

    def transition(self, old: CircuitState, new: CircuitState, at: float) -> None:
        """Record a state change, log it and tell the listeners (one that raises is logged)."""
        self.transition_count += 1
        self.transitions.append(StateTransition(old, new, at))
        log = self._log.warning if new is CircuitState.OPEN else self._log.info
        log("circuit_breaker_state_changed", old=old.value, new=new.value)
        for listener in list(self.listeners):
            try:
                listener(self._name, old, new)
            except Exception:
                self._log.exception(
                    "circuit_breaker_listener_failed", listener=repr(listener), new=new.value
                )

    def metrics(self, state: CircuitState, health: HealthCheck | None) -> CircuitBreakerMetrics:
        """A snapshot of the counters (and of the health check's, if the breaker has one)."""
        return CircuitBreakerMetrics(
            name=self._name,
            state=state,
            calls=self.calls,
            successes=self.successes,
            failures=self.failures,
            ignored=self.ignored,
            rejections=self.rejections,
            slow_calls=self.slow_calls,
            timeouts=self.timeouts,
            transition_count=self.transition_count,
            transitions=tuple(self.transitions),
            health_checks=health.runs if health is not None else 0,
            health_check_failures=health.failures if health is not None else 0,
        )
