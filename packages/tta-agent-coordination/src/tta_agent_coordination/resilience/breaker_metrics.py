"""What a circuit breaker reports: its counters, its state changes, its listeners' type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tta_agent_coordination.resilience.breaker_state import CircuitState

__all__ = ["BreakerListener", "CircuitBreakerMetrics", "StateTransition"]

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
    ``rejections`` only. Each admitted call ends in exactly one of ``successes``,
    ``failures`` (slow calls and timeouts included) or ``ignored``.
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
        }
