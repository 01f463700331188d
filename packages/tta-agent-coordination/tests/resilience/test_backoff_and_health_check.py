"""The open time grows on openings in a row; a health check gates probes and confirms
failures (issue 23 item 6). Each test runs on the in-process store and on the store shared
through Redis (FakeRedis and the real server), whose Lua scripts run the same transitions.

Times are real (the shared store uses the Redis server's clock), so they are short and the
bounds leave room for a loaded machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from tta_agent_coordination.errors import CircuitBreakerOpenError
from tta_agent_coordination.redis.breaker_store import RedisBreakerStore
from tta_agent_coordination.resilience import (
    BreakerStore,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    InMemoryBreakerStore,
    redis_breaker,
)
from tta_agent_coordination.testing import (
    RealRedisUnavailableError,
    delete_prefix,
    fake_redis,
    real_redis,
    unique_prefix,
)
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail


class Boom(Exception):
    pass


async def ok() -> str:
    return "ok"


async def boom() -> None:
    raise Boom("down")


@pytest.fixture(
    params=[
        "memory",
        "shared-fake",
        pytest.param("shared-real", marks=pytest.mark.real_redis),
    ]
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[BreakerStore]:
    """Where the breaker's state lives: this process, or Redis (FakeRedis or real)."""
    if request.param == "memory":
        yield InMemoryBreakerStore()
        return
    client: aioredis.Redis
    if request.param == "shared-fake":
        client = fake_redis()
    else:
        try:
            client = await real_redis()
        except RealRedisUnavailableError as exc:
            skip_or_fail(str(exc))
    prefix = unique_prefix("brk")
    try:
        yield RedisBreakerStore(client, prefix)
    finally:
        await delete_prefix(client, prefix)
        await client.aclose()


def growing(**overrides: object) -> CircuitBreakerConfig:
    fields: dict[str, object] = {
        "failure_threshold": 1,
        "timeout_seconds": 0.1,
        "timeout_multiplier": 2.0,
        "max_timeout_seconds": 0.4,
        "half_open_max_calls": 1,
        "success_threshold": 1,
        **overrides,
    }
    return CircuitBreakerConfig(**fields)  # pyright: ignore[reportArgumentType]


async def open_time(breaker: CircuitBreaker) -> float:
    """The open time just set: ``retry_after`` of a refused call, right after opening."""
    with pytest.raises(CircuitBreakerOpenError) as info:
        await breaker.call(ok)
    assert info.value.retry_after is not None
    return info.value.retry_after


async def wait_open(breaker: CircuitBreaker) -> None:
    await asyncio.sleep((breaker.retry_after or 0.0) + 0.02)


def about(expected: float) -> tuple[float, float]:
    return expected * 0.6, expected + 0.001


# --- the open time grows -----------------------------------------------------------


async def test_open_time_grows_on_openings_in_a_row_up_to_the_cap(store: BreakerStore) -> None:
    breaker = CircuitBreaker("grow", growing(), store)
    seen: list[float] = []
    with pytest.raises(Boom):
        await breaker.call(boom)
    seen.append(await open_time(breaker))
    for _ in range(3):  # failed probes reopen it, each time for longer
        await wait_open(breaker)
        with pytest.raises(Boom):
            await breaker.call(boom)
        seen.append(await open_time(breaker))
    for got, expected in zip(seen, [0.1, 0.2, 0.4, 0.4], strict=True):
        low, high = about(expected)
        assert low <= got <= high, seen

    # Closed only briefly: the next opening is still "in a row" (0.4 s, the cap).
    await wait_open(breaker)
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(Boom):
        await breaker.call(boom)
    low, high = about(0.4)
    assert low <= await open_time(breaker) <= high

    # Closed for max_timeout_seconds: the run of openings is over, back to 0.1 s.
    await wait_open(breaker)
    assert await breaker.call(ok) == "ok"
    await asyncio.sleep(0.45)
    with pytest.raises(Boom):
        await breaker.call(boom)
    low, high = about(0.1)
    assert low <= await open_time(breaker) <= high


async def test_without_a_cap_the_open_time_never_grows(store: BreakerStore) -> None:
    breaker = CircuitBreaker("flat", growing(max_timeout_seconds=None), store)
    with pytest.raises(Boom):
        await breaker.call(boom)
    for _ in range(3):
        low, high = about(0.1)
        assert low <= await open_time(breaker) <= high
        await wait_open(breaker)
        with pytest.raises(Boom):
            await breaker.call(boom)


async def test_reset_forgets_the_openings_in_a_row(store: BreakerStore) -> None:
    breaker = CircuitBreaker("reset", growing(), store)
    with pytest.raises(Boom):
        await breaker.call(boom)
    for _ in range(2):
        await wait_open(breaker)
        with pytest.raises(Boom):
            await breaker.call(boom)
    assert await open_time(breaker) > 0.2
    await breaker.areset()
    with pytest.raises(Boom):
        await breaker.call(boom)
    low, high = about(0.1)
    assert low <= await open_time(breaker) <= high


# --- the health check gates half-open probes ---------------------------------------------


class Check:
    """A health check whose answer the test sets; counts its runs."""

    def __init__(self, healthy: bool = True, delay_s: float = 0.0) -> None:
        self.healthy = healthy
        self.delay_s = delay_s
        self.error: BaseException = redis_errors.ConnectionError("Connection refused")
        self.runs = 0
        self.finished = 0

    async def __call__(self) -> bool:
        self.runs += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.finished += 1
        if not self.healthy:
            raise self.error
        return True


def checked(store: BreakerStore, check: Check, **overrides: object) -> CircuitBreaker:
    fields: dict[str, object] = {
        "failure_threshold": 3,
        "timeout_seconds": 0.1,
        "max_timeout_seconds": 0.4,
        "half_open_max_calls": 2,
        "success_threshold": 1,
        "health_check_timeout_s": 0.2,
        **overrides,
    }
    return redis_breaker("checked", store=store, health_check=check, **fields)


async def trip(breaker: CircuitBreaker, times: int = 3) -> None:
    async def refused() -> None:
        raise redis_errors.ConnectionError("Connection refused")

    for _ in range(times):
        with pytest.raises((redis_errors.ConnectionError, CircuitBreakerOpenError)):
            await breaker.call(refused)
    assert breaker.state is CircuitState.OPEN


async def test_a_failed_health_check_refuses_the_probe_and_reopens_for_longer(
    store: BreakerStore,
) -> None:
    check = Check(healthy=False)
    breaker = checked(store, check)
    await trip(breaker)  # the confirming check failed: open after the first failure
    runs_before = check.runs
    await wait_open(breaker)
    calls = 0

    async def probe() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    with pytest.raises(CircuitBreakerOpenError) as info:
        await breaker.call(probe)
    assert calls == 0  # the call never ran against a dependency that does not answer
    assert check.runs == runs_before + 1
    assert breaker.state is CircuitState.OPEN
    assert info.value.retry_after is not None
    low, high = about(0.2)  # the second opening in a row
    assert low <= info.value.retry_after <= high
    assert breaker.metrics.health_check_failures == check.runs

    check.healthy = True  # the dependency is back: the next probe runs and closes it
    await wait_open(breaker)
    assert await breaker.call(probe) == "ok"
    assert calls == 1
    assert breaker.state is CircuitState.CLOSED


async def test_concurrent_probes_share_one_health_check(store: BreakerStore) -> None:
    check = Check(healthy=True, delay_s=0.05)
    breaker = checked(store, check, half_open_max_calls=3, success_threshold=3)
    await trip(breaker)
    await breaker.aclose()
    runs_before = check.runs
    await wait_open(breaker)
    results = await asyncio.gather(*(breaker.call(ok) for _ in range(3)))
    assert results == ["ok", "ok", "ok"]
    assert check.runs == runs_before + 1
    # Closed: the next call is admitted without a probe (no health check). (``state`` is
    # the last reply seen; concurrent replies of a shared store may arrive out of order.)
    assert await breaker.call(ok) == "ok"
    assert check.runs == runs_before + 1
    assert breaker.state is CircuitState.CLOSED


async def test_a_hanging_health_check_is_bounded(store: BreakerStore) -> None:
    check = Check(healthy=True, delay_s=3600)
    breaker = checked(store, check)
    await trip(breaker)  # the confirming check timed out after 0.2 s: open
    await wait_open(breaker)
    start = time.monotonic()
    with pytest.raises(CircuitBreakerOpenError):
        await breaker.call(ok)
    assert 0.15 <= time.monotonic() - start < 0.5
    assert breaker.state is CircuitState.OPEN


async def test_a_health_check_that_says_nothing_frees_the_probe_slot(store: BreakerStore) -> None:
    check = Check(healthy=False)
    breaker = checked(store, check, half_open_max_calls=1)
    await trip(breaker)
    await wait_open(breaker)
    check.error = redis_errors.MaxConnectionsError("Too many connections")  # not about Redis
    with pytest.raises(CircuitBreakerOpenError):
        await breaker.call(ok)
    assert breaker.state is CircuitState.HALF_OPEN  # not reopened...
    check.healthy = True
    assert await breaker.call(ok) == "ok"  # ...and its only probe slot is free again
    assert breaker.state is CircuitState.CLOSED


async def test_a_probe_cancelled_while_its_health_check_runs_frees_its_slot(
    store: BreakerStore,
) -> None:
    check = Check(healthy=True, delay_s=0.1)
    breaker = checked(store, check, half_open_max_calls=1)
    await trip(breaker)
    await breaker.aclose()
    runs_before = check.runs
    await wait_open(breaker)
    task = asyncio.create_task(breaker.call(ok))
    await asyncio.sleep(0.03)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await breaker.aclose()  # the slot is freed (a shared store: in the background)...
    assert check.runs == runs_before + 1  # ...and the check, which others may share,
    assert check.finished == check.runs  # ran to its end, awaited by aclose()
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


# --- the health check confirms failures ------------------------------------------------


async def test_a_failure_confirmed_by_the_health_check_opens_at_once(store: BreakerStore) -> None:
    check = Check(healthy=False)
    breaker = checked(store, check, failure_threshold=5)

    async def timed_out() -> None:
        raise redis_errors.TimeoutError("Timeout reading from socket")

    with pytest.raises(redis_errors.TimeoutError):
        await breaker.call(timed_out)
    assert breaker.state is CircuitState.OPEN  # one failure, not five
    assert check.runs == 1
    with pytest.raises(CircuitBreakerOpenError):
        await breaker.call(ok)


async def test_a_failure_the_health_check_does_not_confirm_is_only_counted(
    store: BreakerStore,
) -> None:
    check = Check(healthy=True)
    breaker = checked(store, check, failure_threshold=5)

    async def timed_out() -> None:
        raise redis_errors.TimeoutError("Timeout reading from socket")

    for _ in range(4):
        with pytest.raises(redis_errors.TimeoutError):
            await breaker.call(timed_out)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 4
    assert 1 <= check.runs <= 4  # results younger than the check's timeout are reused
    with pytest.raises(redis_errors.TimeoutError):
        await breaker.call(timed_out)
    assert breaker.state is CircuitState.OPEN  # the fifth, by the count


async def test_a_burst_of_failures_shares_one_health_check(store: BreakerStore) -> None:
    check = Check(healthy=False, delay_s=0.05)
    breaker = checked(store, check, failure_threshold=50)

    async def timed_out() -> None:
        await asyncio.sleep(0.01)
        raise redis_errors.TimeoutError("Timeout reading from socket")

    outcomes = await asyncio.gather(
        *(breaker.call(timed_out) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(o, redis_errors.TimeoutError) for o in outcomes)
    assert check.runs == 1
    assert breaker.state is CircuitState.OPEN


async def test_no_health_check_keeps_the_count(store: BreakerStore) -> None:
    breaker = redis_breaker("plain", store=store, failure_threshold=3)

    async def timed_out() -> None:
        raise redis_errors.TimeoutError("Timeout reading from socket")

    for _ in range(2):
        with pytest.raises(redis_errors.TimeoutError):
            await breaker.call(timed_out)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics.health_checks == 0
