"""A real outage: kill a throwaway redis-server mid-run, then bring it back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tta_agent_coordination.errors import CircuitBreakerOpenError
from tta_agent_coordination.redis.breaker_store import RedisBreakerStore
from tta_agent_coordination.resilience import (
    CircuitBreakerRegistry,
    CircuitState,
    RedisGuard,
    RetryPolicy,
    redis_breaker,
)
from tta_agent_coordination.testing import server
from tta_agent_coordination.testing.server import (
    free_port,
    start_redis_server,
    stop_redis_server,
    wait_until_up,
)


def redis_server_path() -> str:
    try:
        return server.redis_server_path()
    except server.RedisServerNotFoundError as exc:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{exc}; CI must run the outage tests")
        pytest.skip(str(exc))


@pytest.mark.real_redis
async def test_breaker_opens_on_outage_fails_fast_and_recovers() -> None:
    path = redis_server_path()
    port = free_port()
    proc: subprocess.Popen[bytes] | None = start_redis_server(port, path)
    # Disable the client's own retries so each failure reaches the guard at once.
    client = aioredis.Redis(
        host="127.0.0.1",
        port=port,
        socket_connect_timeout=0.2,
        socket_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    breaker = redis_breaker("outage", failure_threshold=3, timeout_seconds=0.5)
    guard = RedisGuard(breaker, RetryPolicy(attempts=2, initial_s=0.01, max_s=0.02))
    attempts = 0

    async def write() -> object:
        nonlocal attempts
        attempts += 1
        return await client.incr("outage:counter")

    try:
        await wait_until_up(port)
        for _ in range(5):
            await guard.run("incr", write, retry=True)
        assert breaker.state is CircuitState.CLOSED

        stop_redis_server(proc)  # the outage
        proc = None
        errors: list[type[BaseException]] = []
        for _ in range(5):
            try:
                await guard.run("incr", write, retry=True)
            except (redis_errors.ConnectionError, OSError, CircuitBreakerOpenError) as exc:
                errors.append(type(exc))
        assert breaker.state is CircuitState.OPEN
        assert errors[-1] is CircuitBreakerOpenError
        attempts_when_open = attempts
        assert attempts_when_open - 5 == 3  # exactly failure_threshold attempts hit the dead server

        start = time.monotonic()
        for _ in range(200):
            with pytest.raises(CircuitBreakerOpenError):
                await guard.run("incr", write, retry=True)
        assert time.monotonic() - start < 0.2  # fails fast...
        assert attempts == attempts_when_open  # ...without touching Redis

        proc = start_redis_server(port, path)  # back, empty, on the same port
        await wait_until_up(port)
        await asyncio.sleep(max(breaker.retry_after or 0.0, 0.0) + 0.05)
        assert await guard.run("incr", write, retry=True) == 1
        assert breaker.state is CircuitState.HALF_OPEN
        assert await guard.run("incr", write, retry=True) == 2
        assert breaker.state is CircuitState.CLOSED
        transitions = [(t.from_state, t.to_state) for t in breaker.metrics.transitions]
        assert transitions == [
            (CircuitState.CLOSED, CircuitState.OPEN),
            (CircuitState.OPEN, CircuitState.HALF_OPEN),
            (CircuitState.HALF_OPEN, CircuitState.CLOSED),
        ]
    finally:
        await client.aclose()
        stop_redis_server(proc)


@pytest.mark.real_redis
async def test_shared_store_on_the_dead_server_falls_back_and_recovers() -> None:
    """The breaker's own store lives on the Redis that dies: it must keep working."""
    path = redis_server_path()
    port = free_port()
    proc: subprocess.Popen[bytes] | None = start_redis_server(port, path)
    client = aioredis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    store = RedisBreakerStore(client, "outage", timeout_s=0.2, retry_interval_s=0.2)
    registry = CircuitBreakerRegistry(store)
    breaker = registry.get_or_create(
        "redis", redis_breaker("redis", failure_threshold=2, timeout_seconds=0.3).config
    )
    guard = RedisGuard(breaker)
    try:
        await wait_until_up(port)
        await guard.run("ping", client.ping)
        assert not breaker.using_fallback
        stop_redis_server(proc)
        proc = None
        for _ in range(2):
            with pytest.raises((redis_errors.ConnectionError, OSError)):
                await guard.run("ping", client.ping)
        assert breaker.using_fallback
        assert registry.open_breakers() == ["redis"]
        start = time.monotonic()
        for _ in range(100):
            with pytest.raises(CircuitBreakerOpenError):
                await guard.run("ping", client.ping)
        assert time.monotonic() - start < 0.5

        proc = start_redis_server(port, path)
        await wait_until_up(port)
        await asyncio.sleep(0.35)
        assert await guard.run("ping", client.ping)
        assert not breaker.using_fallback  # the store answers again: shared state rules
        assert breaker.state is CircuitState.CLOSED
    finally:
        await client.aclose()
        stop_redis_server(proc)
