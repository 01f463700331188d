"""Behaviours 30-42 of tta-original.md §4 (circuit breaker), through ``tta_agents.compat``.

Every breaker here keeps its state in Redis (``RedisBreakerStore``), as the original did.
"""

from __future__ import annotations

import asyncio

import pytest

from tta_agents.compat import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerMetrics,
    CircuitBreakerOpenError,
    CircuitBreakerRegistry,
    CircuitBreakerState,
    ConfigurationError,
    get_circuit_breaker_metrics,
)


class Boom(Exception):
    """The failure the tests' functions raise."""


async def ok(value=1):
    return value


async def fail():
    raise Boom("down")


@pytest.fixture
async def make_breaker(coordination_redis, key_prefix):
    made: list[CircuitBreaker] = []

    def make(name="svc", **config) -> CircuitBreaker:
        breaker = CircuitBreaker(
            coordination_redis, name, CircuitBreakerConfig(**config), key_prefix=key_prefix
        )
        made.append(breaker)
        return breaker

    yield make
    for breaker in made:
        await breaker.aclose()


async def test_b30_states_defaults_and_a_new_breaker(make_breaker):
    assert [s.value for s in CircuitBreakerState] == ["closed", "open", "half_open"]
    assert CircuitBreakerMetrics() == CircuitBreakerMetrics(0, 0, 0, 0, None, None)
    breaker = make_breaker()
    assert await breaker.get_state() is CircuitBreakerState.CLOSED
    metrics = await breaker.get_metrics()
    assert metrics["total_calls"] == metrics["failed_calls"] == metrics["successful_calls"] == 0
    assert metrics["last_failure_time"] is None
    assert metrics["last_success_time"] is None


async def test_b31_success_returns_the_value(make_breaker):
    breaker = make_breaker()
    assert await breaker.call(lambda: ok(42)) == 42
    metrics = await breaker.get_metrics()
    assert (metrics["total_calls"], metrics["successful_calls"]) == (1, 1)
    assert metrics["last_success_time"] is not None
    assert breaker.state is CircuitBreakerState.CLOSED


async def test_b32_failure_is_re_raised_and_counted(make_breaker):
    breaker = make_breaker()
    with pytest.raises(Boom):
        await breaker.call(fail)
    metrics = await breaker.get_metrics()
    assert (metrics["total_calls"], metrics["failed_calls"]) == (1, 1)
    assert breaker.state is CircuitBreakerState.CLOSED


async def test_b33_threshold_failures_open_it(make_breaker):
    breaker = make_breaker(failure_threshold=3)
    for _ in range(3):
        with pytest.raises(Boom):
            await breaker.call(fail)
    assert breaker.state is CircuitBreakerState.OPEN
    second = make_breaker("svc2", failure_threshold=2)
    await second.call(ok)
    for _ in range(2):
        with pytest.raises(Boom):
            await second.call(fail)
    assert second.state is CircuitBreakerState.OPEN


async def test_b33_a_success_resets_the_count_while_closed(make_breaker):
    # Behaviour change: consecutive failures, not failures since the last close.
    breaker = make_breaker(failure_threshold=2)
    with pytest.raises(Boom):
        await breaker.call(fail)
    await breaker.call(ok)
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert breaker.state is CircuitBreakerState.CLOSED


async def test_b34_open_breaker_rejects_without_running(make_breaker):
    breaker = make_breaker(failure_threshold=1, timeout_seconds=60)
    with pytest.raises(Boom):
        await breaker.call(fail)
    ran = []

    async def tracked():
        ran.append(1)

    with pytest.raises(CircuitBreakerOpenError) as info:
        await breaker.call(tracked)
    # Replacement of '"OPEN" in the message': the core's message says "is open" and the
    # error carries the breaker's name and when to retry.
    assert "open" in str(info.value).lower()
    assert info.value.name == "svc"
    assert info.value.retry_after is not None
    assert info.value.retry_after > 0
    assert ran == []
    assert await breaker.is_call_permitted() is False


async def test_b35_after_the_timeout_a_probe_runs(make_breaker):
    quick = make_breaker("quick", failure_threshold=1, timeout_seconds=0.1, success_threshold=1)
    slow = make_breaker("slow", failure_threshold=1, timeout_seconds=0.1)
    for breaker in (quick, slow):
        with pytest.raises(Boom):
            await breaker.call(fail)
    await asyncio.sleep(0.15)
    assert await quick.call(ok) == 1
    assert quick.state is CircuitBreakerState.CLOSED
    assert await slow.call(ok) == 1
    assert slow.state is CircuitBreakerState.HALF_OPEN


@pytest.mark.parametrize("via", ["call", "execute"])
async def test_b36_open_reject_wait_recover(make_breaker, via):
    breaker = make_breaker(
        failure_threshold=1, timeout_seconds=0.1, half_open_max_calls=1, success_threshold=1
    )

    async def run(fn, *args):
        if via == "call":
            return await breaker.call(lambda: fn(*args))
        return await breaker.execute(fn, *args)

    with pytest.raises(Boom):
        await run(fail)
    with pytest.raises(CircuitBreakerOpenError):
        await run(ok, 7)
    await asyncio.sleep(0.15)
    assert await run(ok, 7) == 7
    assert breaker.state is CircuitBreakerState.CLOSED


async def test_b37_reset_closes_and_clears_the_count(make_breaker):
    # Replacement of "failure_count=50": the count is the breaker's, read-only.
    breaker = make_breaker(failure_threshold=1)
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert breaker.state is CircuitBreakerState.OPEN
    await breaker.reset()
    assert breaker.state is CircuitBreakerState.CLOSED
    assert (await breaker.get_metrics())["failure_count"] == 0
    assert await breaker.call(ok) == 1


async def test_b38_sequential_successes(make_breaker):
    breaker = make_breaker()
    assert [await breaker.call(lambda i=i: ok(i)) for i in range(5)] == list(range(5))
    metrics = await breaker.get_metrics()
    assert (metrics["total_calls"], metrics["successful_calls"]) == (5, 5)


async def test_b39_execute_forwards_arguments(make_breaker):
    breaker = make_breaker()

    async def add(a, b):
        return a + b

    async def greet(name, greeting="Hello"):
        return f"{greeting}, {name}!"

    async def bad():
        raise ValueError("nope")

    assert await breaker.execute(add, 2, 3) == 5
    assert await breaker.execute(greet, "World", greeting="Hi") == "Hi, World!"
    with pytest.raises(ValueError, match="nope"):
        await breaker.execute(bad)
    # As in the original, a ValueError counts as a failure.
    assert (await breaker.get_metrics())["failed_calls"] == 1


async def test_b40_state_is_shared_through_redis(make_breaker):
    first = make_breaker("shared", failure_threshold=1)
    with pytest.raises(Boom):
        await first.call(fail)
    second = make_breaker("shared", failure_threshold=1)
    await second.initialize()
    # Replacement of "OPEN after initialize()": the state is read at every call.
    with pytest.raises(CircuitBreakerOpenError):
        await second.call(ok)
    assert second.state is CircuitBreakerState.OPEN


async def test_b41_global_metrics_count_successes_and_failures(make_breaker):
    collector = get_circuit_breaker_metrics()
    before = (collector.successful_calls, collector.failed_calls, collector.calls_rejected)
    breaker = make_breaker(failure_threshold=1)
    await breaker.call(ok, correlation_id="corr-1")
    with pytest.raises(Boom):
        await breaker.call(fail, correlation_id="corr-2")
    with pytest.raises(CircuitBreakerOpenError):
        await breaker.call(ok)
    after = (collector.successful_calls, collector.failed_calls, collector.calls_rejected)
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
    assert collector.state_transitions.get("closed_to_open", 0) >= 1
    snapshot = collector.get_snapshot()
    assert 0 <= snapshot["success_rate"] <= 1
    assert 0 < snapshot["rejection_rate"] <= 1


async def test_b42_breaker_registry(coordination_redis, key_prefix):
    registry = CircuitBreakerRegistry(coordination_redis, key_prefix)
    try:
        a = await registry.get_or_create("a")
        await registry.get_or_create("b", CircuitBreakerConfig(failure_threshold=1))
        assert await registry.get_or_create("a") is a
        assert await registry.list_names() == ["a", "b"]
        assert set(await registry.get_all_metrics()) == {"a", "b"}
        assert await registry.remove("a") is True
        assert await registry.remove("a") is False
        assert await registry.list_names() == ["b"]
        assert await registry.cleanup_expired_states() >= 0
        b = await registry.get("b")
        with pytest.raises(Boom):
            await b.call(fail)
        stats = await registry.get_registry_stats()
        assert stats["total_circuit_breakers"] == 1
        assert stats["state_counts"]["open"] == 1
        assert await registry.get_open_circuit_breakers() == ["b"]
        await registry.reset_all()
        assert (await registry.get_all_states()) == {"b": CircuitBreakerState.CLOSED}
    finally:
        await registry.aclose()


async def test_b42_a_different_config_for_an_existing_name_is_an_error(
    coordination_redis, key_prefix
):
    registry = CircuitBreakerRegistry(coordination_redis, key_prefix)
    try:
        await registry.get_or_create("a", CircuitBreakerConfig(failure_threshold=2))
        with pytest.raises(ConfigurationError, match="different config"):
            await registry.get_or_create("a", CircuitBreakerConfig(failure_threshold=3))
    finally:
        await registry.aclose()


def test_a_config_that_could_never_close_is_refused():
    with pytest.raises(ConfigurationError, match="success_threshold"):
        CircuitBreakerConfig(half_open_max_calls=1, success_threshold=2).to_core()


async def test_a_nested_breakers_refusal_is_not_a_failure(make_breaker):
    inner = make_breaker("inner", failure_threshold=1)
    outer = make_breaker("outer", failure_threshold=1)
    with pytest.raises(Boom):
        await inner.call(fail)
    with pytest.raises(CircuitBreakerOpenError):
        await outer.call(lambda: inner.call(ok))
    assert outer.state is CircuitBreakerState.CLOSED
