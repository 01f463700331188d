"""Guards: RedisGuard, AgentCallGuard, PassthroughGuard and protect() (breaker + retries).

RetryPolicy on its own is in ``test_retry.py``.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.exceptions as redis_errors

from tta_agent_coordination.errors import CircuitBreakerOpenError, ConfigurationError
from tta_agent_coordination.interfaces import CallGuard
from tta_agent_coordination.resilience import (
    AgentCallGuard,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    PassthroughGuard,
    RedisGuard,
    RetryPolicy,
    protect,
    redis_breaker,
)


class Flaky:
    """Fails with ``errors`` in turn, then returns "done"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def fast_policy(**kw) -> RetryPolicy:
    kw.setdefault("initial_s", 0.001)
    kw.setdefault("max_s", 0.002)
    return RetryPolicy(**kw)


def test_guards_implement_call_guard() -> None:
    guards: list[CallGuard] = [RedisGuard(), PassthroughGuard()]
    assert len(guards) == 2
    guard = RedisGuard()
    assert guard.breaker.name == "redis"
    assert guard.retry_policy is not None
    assert guard.retry_policy.attempts == 3


async def test_redis_guard_retries_only_when_allowed() -> None:
    guard = RedisGuard(retry=fast_policy())
    fn = Flaky(redis_errors.ConnectionError(), redis_errors.ConnectionError())
    assert await guard.run("send", fn, retry=True) == "done"
    assert fn.calls == 3
    fn = Flaky(redis_errors.ConnectionError())
    with pytest.raises(redis_errors.ConnectionError):
        await guard.run("ack", fn)
    assert fn.calls == 1


async def test_redis_guard_breaker_counts_each_attempt_and_stops_retrying_when_open() -> None:
    breaker = redis_breaker("r", failure_threshold=2)
    guard = RedisGuard(breaker, fast_policy(attempts=5))
    fn = Flaky(*[redis_errors.ConnectionError() for _ in range(10)])
    with pytest.raises(CircuitBreakerOpenError):
        await guard.run("send", fn, retry=True)
    assert fn.calls == 2  # two attempts opened the breaker; the third was refused at once
    assert breaker.state is CircuitState.OPEN
    start = time.monotonic()
    for _ in range(100):
        with pytest.raises(CircuitBreakerOpenError):
            await guard.run("send", fn, retry=True)
    assert time.monotonic() - start < 0.5
    assert fn.calls == 2


async def test_redis_breaker_ignores_response_and_caller_errors() -> None:
    guard = RedisGuard(redis_breaker("r", failure_threshold=1), fast_policy())
    for error in (redis_errors.ResponseError("WRONGTYPE"), ValueError("bad"), RuntimeError("x")):
        with pytest.raises(type(error)):
            await guard.run("op", Flaky(error), retry=True)
    assert guard.breaker.state is CircuitState.CLOSED


async def test_protect_an_agent_call() -> None:
    class LLMUnavailable(Exception):
        pass

    breaker = CircuitBreaker("llm", CircuitBreakerConfig(failure_threshold=2))
    calls = 0

    @protect(breaker=breaker, retry=fast_policy(retry_on=(LLMUnavailable,), attempts=2))
    async def complete(prompt: str) -> str:
        nonlocal calls
        calls += 1
        if prompt == "down":
            raise LLMUnavailable
        return prompt.upper()

    assert await complete("hi") == "HI"
    with pytest.raises(LLMUnavailable):
        await complete("down")  # two attempts, two failures: open
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenError):
        await complete("hi")
    assert calls == 3

    plain = protect(lambda: asyncio.sleep(0, "x"), breaker=CircuitBreaker("p"))
    assert await plain() == "x"
    guard = AgentCallGuard(CircuitBreaker("db"))
    assert await guard.run("q", lambda: asyncio.sleep(0, 1), retry=True) == 1


def test_a_long_fixed_open_time_raises_the_cap_instead_of_being_refused():
    from tta_agent_coordination.resilience.guard import redis_breaker_config

    assert redis_breaker_config(timeout_seconds=60).max_timeout_seconds == 60
    assert redis_breaker_config().max_timeout_seconds == 5
    with pytest.raises(ConfigurationError, match="max_timeout_seconds"):
        redis_breaker_config(timeout_seconds=60, max_timeout_seconds=5)
