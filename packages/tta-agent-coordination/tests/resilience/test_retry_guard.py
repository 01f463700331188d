"""RetryPolicy, RedisGuard, AgentCallGuard and protect()."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.exceptions as redis_errors
from structlog.testing import capture_logs

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
    is_transient,
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


@pytest.mark.parametrize(
    "error",
    [
        redis_errors.ConnectionError("reset"),
        redis_errors.TimeoutError("slow"),
        redis_errors.BusyLoadingError("loading"),
        redis_errors.ClusterDownError("CLUSTERDOWN"),
        redis_errors.TryAgainError("TRYAGAIN"),
        ConnectionResetError(),
        TimeoutError(),
    ],
)
async def test_retries_transient_errors(error: BaseException) -> None:
    fn = Flaky(error, error)
    assert await fast_policy().call(fn) == "done"
    assert fn.calls == 3


@pytest.mark.parametrize(
    "error",
    [
        redis_errors.ResponseError("WRONGTYPE"),
        CircuitBreakerOpenError("redis"),
        redis_errors.AuthenticationError("bad password"),
        ValueError("bad"),
        RuntimeError("bug"),
    ],
)
async def test_does_not_retry_other_errors(error: BaseException) -> None:
    fn = Flaky(error)
    with pytest.raises(type(error)):
        await fast_policy().call(fn)
    assert fn.calls == 1
    assert not is_transient(error)


async def test_breaker_open_is_never_retried_even_if_listed() -> None:
    fn = Flaky(CircuitBreakerOpenError("x"))
    with pytest.raises(CircuitBreakerOpenError):
        await fast_policy(retry_on=(Exception,)).call(fn)
    assert fn.calls == 1


async def test_respects_attempts_and_reraises_last_error() -> None:
    errors = [redis_errors.ConnectionError(f"e{i}") for i in range(10)]
    fn = Flaky(*errors)
    with pytest.raises(redis_errors.ConnectionError, match="e3"):
        await fast_policy(attempts=4).call(fn)
    assert fn.calls == 4


async def test_respects_deadline() -> None:
    fn = Flaky(*[redis_errors.ConnectionError() for _ in range(1000)])
    policy = RetryPolicy(attempts=None, deadline_s=0.3, initial_s=0.05, max_s=0.05, jitter_s=0)
    start = time.monotonic()
    with pytest.raises(redis_errors.ConnectionError):
        await policy.call(fn)
    elapsed = time.monotonic() - start
    assert elapsed < 0.3 + 0.05
    assert 3 <= fn.calls <= 7


async def test_backoff_grows_exponentially_with_jitter() -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    policy = RetryPolicy(
        attempts=6, deadline_s=None, initial_s=0.1, max_s=1.0, jitter_s=0.05, sleep=fake_sleep
    )
    with pytest.raises(OSError, match="gone"):
        await policy.call(Flaky(*[OSError("gone") for _ in range(6)]))
    assert len(sleeps) == 5
    for n, slept in enumerate(sleeps):
        base = min(0.1 * 2**n, 1.0)
        assert base <= slept <= min(base + 0.05, 1.0)


async def test_logs_each_retry_and_giving_up() -> None:
    with capture_logs() as logs, pytest.raises(OSError, match="e3"):
        await fast_policy(attempts=3, name="p").call(
            Flaky(OSError("e1"), OSError("e2"), OSError("e3")), operation="op"
        )
    retries = [e for e in logs if e["event"] == "retrying"]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert retries[0]["operation"] == "op"
    assert retries[0]["policy"] == "p"
    assert [e["attempts"] for e in logs if e["event"] == "retry_gave_up"] == [3]


async def test_wrap_preserves_signature_and_retries() -> None:
    calls = 0

    async def fetch(key: str, *, default: int = 0) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise redis_errors.ConnectionError
        return f"{key}:{default}"

    wrapped = fast_policy().wrap(fetch)
    assert wrapped.__name__ == "fetch"
    assert await wrapped("k", default=2) == "k:2"
    assert calls == 2


def test_invalid_policy() -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(attempts=None, deadline_s=None)
    with pytest.raises(ConfigurationError):
        RetryPolicy(attempts=0)
    with pytest.raises(ConfigurationError):
        RetryPolicy(initial_s=2, max_s=1)


# --- guards ---------------------------------------------------------------------------


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
