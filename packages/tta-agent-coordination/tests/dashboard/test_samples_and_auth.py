"""Sparkline samples stay bounded; the token check."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tta_agent_coordination.dashboard.auth import TokenCheck, check_token
from tta_agent_coordination.dashboard.samples import QueueSamples, sparkline_points


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_samples_are_bounded_per_queue_and_in_number_of_queues() -> None:
    clock = Clock()
    samples = QueueSamples(keep=5, max_queues=3, min_interval_s=1.0, clock=clock)
    for n in range(20):
        clock.now = float(n)
        samples.record("a", depth=n, added=10 * n, dead=0)
    assert [s.depth for s in samples.samples("a")] == [15, 16, 17, 18, 19]
    assert samples.rates("a") == [10.0, 10.0, 10.0, 10.0]
    for name in ("b", "c", "d"):
        samples.record(name, depth=1, added=1, dead=0)
    assert len(samples) == 3
    assert samples.samples("a") == []  # read longest ago: dropped
    assert samples.depths("nothing") == []


def test_samples_closer_than_the_interval_are_not_kept_and_resets_count_zero() -> None:
    clock = Clock()
    samples = QueueSamples(min_interval_s=2.0, clock=clock)
    samples.record("q", depth=1, added=100, dead=0)
    clock.now = 1.0
    samples.record("q", depth=9, added=200, dead=0)
    assert [s.depth for s in samples.samples("q")] == [1]
    clock.now = 3.0
    samples.record("q", depth=2, added=5, dead=0)  # streams re-created: counter restarted
    assert samples.rates("q") == [0.0]


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=2, max_size=60))
def test_sparkline_points_stay_inside_the_box(values: list[float]) -> None:
    points = [tuple(map(float, p.split(","))) for p in sparkline_points(values).split()]
    assert len(points) == len(values)
    assert points[0][0] == 0
    assert points[-1][0] == 120
    assert all(0 <= y <= 24 for _, y in points)


def test_sparkline_needs_two_values() -> None:
    assert sparkline_points([]) == sparkline_points([3.0]) == ""


def test_token_check() -> None:
    assert check_token(None, "x") is TokenCheck.READ_ONLY
    assert check_token("", "x") is TokenCheck.READ_ONLY
    assert check_token("t", None) is TokenCheck.MISSING
    assert check_token("t", "") is TokenCheck.MISSING
    assert check_token("t", "u") is TokenCheck.WRONG
    assert check_token("t", "t") is TokenCheck.ALLOWED
