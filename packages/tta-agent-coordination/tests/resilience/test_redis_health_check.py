"""``redis_health_check``: PING on a connection of its own, never behind the client's pool."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tta_agent_coordination.resilience import (
    CircuitState,
    RedisGuard,
    default_redis_guard,
    redis_health_check,
)
from tta_agent_coordination.resilience.defaults import _GUARDS  # pyright: ignore[reportPrivateUsage]
from tta_agent_coordination.settings import CoordinationSettings
from tta_agent_coordination.testing import DEFAULT_TEST_REDIS_URL, free_port, unique_prefix


async def test_it_answers_on_fakeredis_and_on_the_real_server(
    coordination_redis: aioredis.Redis,
) -> None:
    check = redis_health_check(coordination_redis)
    assert await check() in (b"PONG", "PONG", True)


async def test_a_dead_server_raises_a_connection_error() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    try:
        with pytest.raises(redis_errors.ConnectionError):
            await redis_health_check(client)()
    finally:
        await client.aclose()


@pytest.mark.real_redis
async def test_it_does_not_wait_behind_an_exhausted_pool() -> None:
    settings = CoordinationSettings(redis_url=DEFAULT_TEST_REDIS_URL, max_connections=1)
    client = settings.redis_client()
    key = unique_prefix("health") + ":empty"
    try:

        async def hold() -> object:
            return await client.blpop([key], timeout=2)  # takes the only connection

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0.1)
        start = time.monotonic()
        assert await asyncio.wait_for(redis_health_check(client)(), 1.0) in (b"PONG", "PONG")
        assert time.monotonic() - start < 0.5
        assert not holder.done()
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
    finally:
        await client.aclose()


async def test_the_default_guard_checks_the_health_of_its_own_client() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    try:
        guard = default_redis_guard(client)
        with pytest.raises(redis_errors.ConnectionError):
            await guard.run("ping", client.ping)
        assert guard.breaker.metrics.health_checks == 1  # it PINGed the same dead server
        assert guard.breaker.state is CircuitState.OPEN  # confirmed: open at once
        # No client, no health check: the breaker counts to failure_threshold, as before.
        plain = RedisGuard()
        with pytest.raises(redis_errors.ConnectionError):
            await plain.run("ping", client.ping)
        assert plain.breaker.metrics.health_checks == 0
        assert plain.breaker.state is CircuitState.CLOSED
    finally:
        await client.aclose()


async def test_the_default_guard_does_not_keep_its_client_alive() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=free_port())
    default_redis_guard(client)
    ref = weakref.ref(client)
    await client.aclose()
    del client
    gc.collect()
    assert ref() is None
    assert all(c is not None for c in list(_GUARDS.keys()))
