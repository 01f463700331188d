"""Behaviour of CircuitBreaker with the in-process store and an injected clock."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from tta_agent_coordination.errors import CircuitBreakerOpenError
from tta_agent_coordination.resilience import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    InMemoryBreakerStore,
)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Boom(Exception):
    pass


async def ok(value: object = "ok") -> object:
    return value


async def boom() -> None:
    raise Boom("down")


def make(clock: FakeClock, **cfg) -> CircuitBreaker:
    return CircuitBreaker("svc", CircuitBreakerConfig(**cfg), clock=clock)


async def fail_n(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            await breaker.call(boom)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_defaults_match_design() -> None:
    cfg = CircuitBreakerConfig()
    assert (cfg.failure_threshold, cfg.timeout_seconds) == (5, 60.0)
    assert (cfg.half_open_max_calls, cfg.success_threshold) == (3, 2)
    breaker = CircuitBreaker("x")
    assert breaker.state is CircuitState.CLOSED
    assert await breaker.call(ok) == "ok"


async def test_opens_after_consecutive_failures_and_fails_fast(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=3, timeout_seconds=10)
    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1
        raise Boom

    for _ in range(3):
        with pytest.raises(Boom):
            await breaker.call(counted)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenError) as info:
        await breaker.call(counted)
    assert calls == 3
    assert info.value.name == "svc"
    assert info.value.retry_after == pytest.approx(10)
    clock.advance(4)
    with pytest.raises(CircuitBreakerOpenError) as info:
        await breaker.call(counted)
    assert info.value.retry_after == pytest.approx(6)


async def test_success_resets_consecutive_count(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=3)
    for _ in range(5):
        await fail_n(breaker, 2)
        assert breaker.failure_count == 2
        await breaker.call(ok)
        assert breaker.failure_count == 0
    assert breaker.state is CircuitState.CLOSED


async def test_half_open_after_timeout_then_closes(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2, timeout_seconds=30, success_threshold=2)
    await fail_n(breaker, 2)
    clock.advance(29.9)
    with pytest.raises(CircuitBreakerOpenError):
        await breaker.call(ok)
    clock.advance(0.1)
    assert breaker.state is CircuitState.OPEN  # lazy: nothing happens until a call
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.HALF_OPEN
    await breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED
    assert [(t.from_state, t.to_state) for t in breaker.metrics.transitions] == [
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED),
    ]


async def test_probe_failure_reopens_for_a_full_timeout(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, timeout_seconds=5)
    await fail_n(breaker, 1)
    clock.advance(5)
    await breaker.call(ok)  # one good probe (success_threshold is 2)
    await fail_n(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    clock.advance(4.9)
    with pytest.raises(CircuitBreakerOpenError):
        await breaker.call(ok)
    clock.advance(0.1)
    await breaker.call(ok)
    assert breaker.state is CircuitState.HALF_OPEN


async def test_reset_closes_and_clears(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2)
    await fail_n(breaker, 2)
    assert breaker.state is CircuitState.OPEN
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 0
    await fail_n(breaker, 1)
    assert breaker.state is CircuitState.CLOSED  # the count started again from zero
    breaker.reset()
    breaker.reset()  # idempotent, even when closed
    assert breaker.state is CircuitState.CLOSED


async def test_listeners_and_raising_listener(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, timeout_seconds=1, success_threshold=1)
    seen: list[tuple[str, CircuitState, CircuitState]] = []

    def bad(name: str, old: CircuitState, new: CircuitState) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(bad)
    breaker.add_listener(lambda *args: seen.append(args))
    with capture_logs() as logs:
        await fail_n(breaker, 1)
        clock.advance(1)
        await breaker.call(ok)
    assert seen == [
        ("svc", CircuitState.CLOSED, CircuitState.OPEN),
        ("svc", CircuitState.OPEN, CircuitState.HALF_OPEN),
        ("svc", CircuitState.HALF_OPEN, CircuitState.CLOSED),
    ]
    failures = [e for e in logs if e["event"] == "circuit_breaker_listener_failed"]
    assert len(failures) == 3
    assert failures[0]["log_level"] == "error"
    breaker.remove_listener(bad)
    breaker.reset()


async def test_decorator_execute_and_context_manager(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2)

    @breaker
    async def add(a: int, b: int = 0) -> int:
        return a + b

    assert await add(2, b=3) == 5
    assert add.__name__ == "add"
    assert await breaker.execute(add, 1, 1) == 2

    async with breaker:
        pass
    with pytest.raises(Boom):
        async with breaker:
            raise Boom
    with pytest.raises(Boom):
        async with breaker:
            raise Boom
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenError):
        async with breaker:
            pytest.fail("the body must not run while open")
    m = breaker.metrics
    # add() through the decorator counts once; execute(add) nests: two admitted calls.
    assert (m.calls, m.successes, m.failures, m.rejections) == (6, 4, 2, 1)


async def test_nested_context_managers_and_concurrent_tasks(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=5)

    async def body(fail: bool) -> None:
        async with breaker:
            await asyncio.sleep(0)
            async with breaker:
                await asyncio.sleep(0)
            if fail:
                raise Boom

    results = await asyncio.gather(*(body(i % 2 == 0) for i in range(4)), return_exceptions=True)
    assert sum(isinstance(r, Boom) for r in results) == 2
    m = breaker.metrics
    assert (m.calls, m.successes, m.failures) == (8, 6, 2)


async def test_metrics_snapshot(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)
    await breaker.call(ok)
    with pytest.raises(ValueError, match="bad"):
        await breaker.call(lambda: _raise(ValueError("bad")))
    await fail_n(breaker, 1)
    with pytest.raises(CircuitBreakerOpenError):
        await breaker.call(ok)
    m = breaker.metrics
    assert m.name == "svc"
    assert m.state is CircuitState.OPEN
    assert (m.calls, m.successes, m.failures, m.ignored, m.rejections) == (3, 1, 1, 1, 1)
    assert m.transition_count == 1
    assert m.to_dict()["transitions"][0]["to"] == "open"


async def _raise(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize("exc", [ValueError("v"), TypeError("t"), KeyError("k")])
async def test_caller_errors_do_not_trip(clock: FakeClock, exc: Exception) -> None:
    breaker = make(clock, failure_threshold=1)
    for _ in range(3):
        with pytest.raises(type(exc)):
            await breaker.call(lambda: _raise(exc))
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics.ignored == 3


async def test_inner_open_breaker_does_not_trip_outer(clock: FakeClock) -> None:
    inner = CircuitBreaker("inner", CircuitBreakerConfig(failure_threshold=1), clock=clock)
    outer = make(clock, failure_threshold=1)
    await fail_n(inner, 1)
    for _ in range(3):
        with pytest.raises(CircuitBreakerOpenError) as info:
            await outer.call(lambda: inner.call(ok))
        assert info.value.name == "inner"
    assert outer.state is CircuitState.CLOSED


async def test_record_list_and_unrecorded_errors_count_as_success(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2, record=(ConnectionError,))
    await fail_n(breaker, 1)  # Boom is not recorded: the dependency answered
    await fail_n(breaker, 1)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics.successes == 2
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await breaker.call(lambda: _raise(ConnectionError()))
    assert breaker.state is CircuitState.OPEN


async def test_ignore_takes_precedence_over_record(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, record=(Exception,), ignore=(Boom,))
    await fail_n(breaker, 3)
    assert breaker.state is CircuitState.CLOSED


async def test_cancellation_is_never_a_failure(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(breaker.call(hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics.ignored == 1


async def test_slow_calls_count_as_failures(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2, slow_call_threshold_s=1.0)

    async def slow() -> str:
        clock.advance(1.5)
        return "late"

    assert await breaker.call(slow) == "late"  # the result still comes back
    assert breaker.failure_count == 1
    clock.advance(0)
    await breaker.call(ok)  # fast: resets
    assert breaker.failure_count == 0
    await breaker.call(slow)
    await breaker.call(slow)
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics.slow_calls == 3


async def test_call_timeout_counts_as_failure() -> None:
    breaker = CircuitBreaker(
        "t", CircuitBreakerConfig(failure_threshold=2, call_timeout_s=0.02, record=(Boom,))
    )
    for _ in range(2):
        with pytest.raises(TimeoutError):
            await breaker.call(lambda: asyncio.sleep(1))
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics.timeouts == 2


async def test_call_timeout_in_context_manager() -> None:
    breaker = CircuitBreaker("t", CircuitBreakerConfig(failure_threshold=1, call_timeout_s=0.02))
    with pytest.raises(TimeoutError):
        async with breaker:
            await asyncio.sleep(1)
    assert breaker.state is CircuitState.OPEN


async def test_sliding_window_rate_trips(clock: FakeClock) -> None:
    breaker = make(
        clock,
        failure_threshold=100,
        window_size=10,
        failure_rate_threshold=0.5,
        minimum_calls=6,
    )
    # Alternate: never 2 failures in a row; trips once 6 calls are in and 50% failed.
    for i in range(5):
        if i % 2 == 0:
            await fail_n(breaker, 1)
        else:
            await breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED  # 5 calls < minimum_calls
    await breaker.call(ok)  # 6 calls, 3 failures: the check happens on a failure
    assert breaker.state is CircuitState.CLOSED
    await fail_n(breaker, 1)  # 7 calls, 4 failures (57%)
    assert breaker.state is CircuitState.OPEN


async def test_sliding_window_forgets_old_calls(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=100, window_size=4, failure_rate_threshold=0.75)
    await fail_n(breaker, 2)
    for _ in range(4):
        await breaker.call(ok)
    await fail_n(breaker, 2)  # window: ok ok F F = 50%
    assert breaker.state is CircuitState.CLOSED
    await fail_n(breaker, 1)  # ok F F F = 75%
    assert breaker.state is CircuitState.OPEN


# --- concurrency ------------------------------------------------------------------------


async def test_half_open_admits_exactly_max_concurrent_probes(clock: FakeClock) -> None:
    breaker = make(
        clock, failure_threshold=1, timeout_seconds=5, half_open_max_calls=3, success_threshold=3
    )
    await fail_n(breaker, 1)
    clock.advance(5)
    gate = asyncio.Event()
    running = 0

    async def probe() -> str:
        nonlocal running
        running += 1
        await gate.wait()
        return "ok"

    tasks = [asyncio.create_task(breaker.call(probe)) for _ in range(7)]
    await asyncio.sleep(0.01)
    assert running == 3
    assert breaker.state is CircuitState.HALF_OPEN
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("ok") == 3
    assert sum(isinstance(r, CircuitBreakerOpenError) for r in results) == 4
    assert breaker.state is CircuitState.CLOSED


async def test_cancelled_probe_frees_its_slot(clock: FakeClock) -> None:
    breaker = make(
        clock, failure_threshold=1, timeout_seconds=5, half_open_max_calls=1, success_threshold=1
    )
    await fail_n(breaker, 1)
    clock.advance(5)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(breaker.call(hang))
    await started.wait()
    with pytest.raises(CircuitBreakerOpenError):
        await breaker.call(ok)  # the only slot is taken
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(ok) == "ok"  # the slot was freed
    assert breaker.state is CircuitState.CLOSED


async def test_timed_out_probe_reopens_instead_of_sticking() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "t",
        CircuitBreakerConfig(
            failure_threshold=1,
            timeout_seconds=5,
            half_open_max_calls=1,
            success_threshold=1,
            call_timeout_s=0.02,
        ),
        clock=clock,
    )
    await fail_n(breaker, 1)
    clock.advance(5)
    with pytest.raises(TimeoutError):
        await breaker.call(lambda: asyncio.sleep(1))
    assert breaker.state is CircuitState.OPEN
    clock.advance(5)
    await breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED


async def test_abandoned_probe_slots_are_reclaimed_after_the_lease(clock: FakeClock) -> None:
    store = InMemoryBreakerStore()
    cfg = CircuitBreakerConfig(
        failure_threshold=1, timeout_seconds=5, half_open_max_calls=1, success_threshold=1
    )
    breaker = CircuitBreaker("svc", cfg, store, clock=clock)
    await fail_n(breaker, 1)
    clock.advance(5)
    # Simulate a holder that died without settling (possible with a shared store).
    assert store.acquire_now("svc", cfg, clock()).probe
    with pytest.raises(CircuitBreakerOpenError):
        await breaker.call(ok)
    clock.advance(cfg.probe_lease_s)
    assert await breaker.call(ok) == "ok"


async def test_stale_outcomes_do_not_change_a_later_state(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, timeout_seconds=5, success_threshold=1)
    gate = asyncio.Event()

    async def slow_ok() -> str:
        await gate.wait()
        return "ok"

    slow = asyncio.create_task(breaker.call(slow_ok))  # admitted while closed
    await asyncio.sleep(0)
    await fail_n(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    clock.advance(5)
    hold = asyncio.Event()

    async def probe() -> str:
        await hold.wait()
        raise Boom

    probe_task = asyncio.create_task(breaker.call(probe))
    await asyncio.sleep(0)
    assert breaker.state is CircuitState.HALF_OPEN
    gate.set()
    assert await slow == "ok"  # admitted while closed: must not count as a probe
    assert breaker.state is CircuitState.HALF_OPEN
    hold.set()
    with pytest.raises(Boom):
        await probe_task
    assert breaker.state is CircuitState.OPEN


async def test_context_managers_of_two_breakers_nest(clock: FakeClock) -> None:
    outer = CircuitBreaker("outer", CircuitBreakerConfig(failure_threshold=1), clock=clock)
    inner = CircuitBreaker("inner", CircuitBreakerConfig(failure_threshold=1), clock=clock)
    with pytest.raises(Boom):
        async with outer, inner:
            raise Boom
    assert outer.state is CircuitState.OPEN
    assert inner.state is CircuitState.OPEN
