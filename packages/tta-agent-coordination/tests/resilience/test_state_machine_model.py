"""Hypothesis: the breaker agrees with a plain model on random call/clock sequences."""

from __future__ import annotations

import asyncio
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
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probe_successes: int = 0

    def call(self, now: float, outcome: str) -> bool:
        """Apply one call; False when the breaker refuses it."""
        if self.state is CircuitState.OPEN:
            if now - self.opened_at < self.timeout:
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
                    self.state, self.opened_at, self.failures = CircuitState.OPEN, now, 0
        elif outcome == "ok":
            self.probe_successes += 1
            if self.probe_successes >= self.success_threshold:
                self.state, self.failures = CircuitState.CLOSED, 0
        else:
            self.state, self.opened_at = CircuitState.OPEN, now
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
    steps=ops,
)
def test_breaker_matches_model(
    threshold: int, timeout: float, success_threshold: int, extra_slots: int, steps: list
) -> None:
    now = [0.0]
    breaker = CircuitBreaker(
        "model",
        CircuitBreakerConfig(
            failure_threshold=threshold,
            timeout_seconds=timeout,
            success_threshold=success_threshold,
            half_open_max_calls=success_threshold + extra_slots,
        ),
        clock=lambda: now[0],
    )
    model = Model(threshold, timeout, success_threshold)

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
