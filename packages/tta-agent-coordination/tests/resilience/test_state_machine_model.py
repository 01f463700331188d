"""Hypothesis: the breaker agrees with a plain model on random call/clock sequences.

The model includes the open time that grows on openings in a row (issue 23 item 6).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from tta_agent_coordination.errors import CircuitBreakerOpenError
from tta_agent_coordination.resilience import CircuitBreaker, CircuitBreakerConfig, CircuitState


class Boom(Exception):
    pass


@dataclass
class Model:
    """The specification, sequential calls only (so probes never overlap)."""

    threshold: int
    timeout: float
    success_threshold: int
    multiplier: float = 1.0
    max_timeout: float | None = None
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_until: float = 0.0
    probe_successes: int = 0
    streak: int = 0
    closed_at: float = -math.inf

    def open(self, now: float) -> None:
        """Open: the n-th opening in a row stays open timeout * multiplier^(n-1), capped.

        Openings are in a row until the breaker has stayed closed for the cap.
        """
        longest = self.max_timeout if self.max_timeout is not None else self.timeout
        if self.state is CircuitState.CLOSED and now - self.closed_at >= longest:
            self.streak = 0
        self.streak += 1
        open_for = min(self.timeout * self.multiplier ** (self.streak - 1), longest)
        self.state, self.opened_until, self.failures = CircuitState.OPEN, now + open_for, 0

    def call(self, now: float, outcome: str) -> bool:
        """Apply one call; False when the breaker refuses it."""
        if self.state is CircuitState.OPEN:
            if now < self.opened_until:
                return False
            self.state, self.probe_successes = CircuitState.HALF_OPEN, 0
        if outcome == "ignored":
            return True
        if self.state is CircuitState.CLOSED:
            if outcome == "ok":
                self.failures = 0
            else:
                self.failures += 1
                if self.failures >= self.threshold:
                    self.open(now)
        elif outcome == "ok":
            self.probe_successes += 1
            if self.probe_successes >= self.success_threshold:
                self.state, self.failures, self.closed_at = CircuitState.CLOSED, 0, now
        else:
            self.open(now)
        return True


ops = st.lists(
    st.one_of(
        st.sampled_from(["ok", "fail", "ignored"]),
        st.floats(min_value=0.0, max_value=20.0, allow_nan=False).map(lambda dt: ("advance", dt)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    threshold=st.integers(1, 4),
    timeout=st.sampled_from([1.0, 2.5, 10.0]),
    success_threshold=st.integers(1, 3),
    extra_slots=st.integers(0, 2),
    growth=st.sampled_from([(1.0, None), (2.0, None), (2.0, 4.0), (1.5, 3.0), (3.0, 100.0)]),
    steps=ops,
)
def test_breaker_matches_model(
    threshold: int,
    timeout: float,
    success_threshold: int,
    extra_slots: int,
    growth: tuple[float, float | None],
    steps: list,
) -> None:
    multiplier, cap = growth
    max_timeout = None if cap is None else cap * timeout
    now = [0.0]
    breaker = CircuitBreaker(
        "model",
        CircuitBreakerConfig(
            failure_threshold=threshold,
            timeout_seconds=timeout,
            success_threshold=success_threshold,
            half_open_max_calls=success_threshold + extra_slots,
            timeout_multiplier=multiplier,
            max_timeout_seconds=max_timeout,
        ),
        clock=lambda: now[0],
    )
    model = Model(threshold, timeout, success_threshold, multiplier, max_timeout)

    async def outcome_of(kind: str) -> None:
        if kind == "fail":
            raise Boom
        if kind == "ignored":
            raise ValueError("caller error")

    async def run() -> None:
        rejected = admitted = 0
        for step in steps:
            if isinstance(step, tuple):
                now[0] += step[1]
                continue
            expected_admit = model.call(now[0], step)
            try:
                await breaker.call(lambda k=step: outcome_of(k))
            except CircuitBreakerOpenError:
                assert not expected_admit, f"refused, model admits; {step} at {now[0]}"
                rejected += 1
            except (Boom, ValueError):
                assert expected_admit
                admitted += 1
            else:
                assert expected_admit
                admitted += 1
            assert breaker.state is model.state, (step, now[0])
            if model.state is CircuitState.CLOSED:
                assert breaker.failure_count == model.failures
        m = breaker.metrics
        assert (m.rejections, m.calls) == (rejected, admitted)
        assert m.successes + m.failures + m.ignored == admitted

    asyncio.run(run())
