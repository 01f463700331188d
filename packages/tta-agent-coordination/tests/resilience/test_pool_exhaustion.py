"""Pool exhaustion is back-pressure in this process, not a Redis failure (issue 23 item 6).

redis-py raises ``MaxConnectionsError`` (a ``ConnectionError``) when a client's pool has no
free connection. Counting it opened the Redis breaker: with the default pool of 100, 900
of 1,000 workers in one process could not start. The breaker must not count it (on the
in-process and on the shared store), and the clients the library builds wait for a free
connection instead of failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from tta_agent_coordination.redis.breaker_store import RedisBreakerStore
from tta_agent_coordination.resilience import (
    BreakerStore,
    CircuitState,
    InMemoryBreakerStore,
    RedisGuard,
    RetryPolicy,
    default_redis_guard,
    redis_breaker,
)
from tta_agent_coordination.settings import CoordinationSettings
from tta_agent_coordination.testing import DEFAULT_TEST_REDIS_URL, real_redis, unique_prefix


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[BreakerStore]:
    """The in-process store, or a store shared through the real Redis (its own client)."""
    if request.param == "memory":
        yield InMemoryBreakerStore()
        return
    client = await real_redis()
    try:
        yield RedisBreakerStore(client, unique_prefix("pool"))
    finally:
        await client.aclose()


@pytest.mark.real_redis
async def test_max_connections_error_is_not_a_redis_failure(store: BreakerStore) -> None:
    breaker = redis_breaker("pool", failure_threshold=1, store=store)
    guard = RedisGuard(breaker, RetryPolicy(attempts=1))

    async def exhausted() -> None:
        raise redis_errors.MaxConnectionsError("Too many connections")

    for _ in range(5):
        with pytest.raises(redis_errors.MaxConnectionsError):
            await guard.run("op", exhausted)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics.failures == 0


@pytest.mark.real_redis
async def test_an_exhausted_pool_of_a_real_client_does_not_open_the_breaker(
    store: BreakerStore,
) -> None:
    # redis-py's own pool, which raises when exhausted (a client an application built)
    client = aioredis.Redis.from_url(DEFAULT_TEST_REDIS_URL, max_connections=3)
    key = unique_prefix("pool") + ":empty"
    breaker = redis_breaker("pool", failure_threshold=2, store=store)
    guard = RedisGuard(breaker, RetryPolicy(attempts=1))
    try:
        outcomes = await asyncio.gather(
            *(guard.run("blpop", lambda: client.blpop([key], timeout=0.2)) for _ in range(12)),
            return_exceptions=True,
        )
    finally:
        await client.aclose()
    refused = [o for o in outcomes if isinstance(o, redis_errors.MaxConnectionsError)]
    assert refused, "the pool of 3 should have been exhausted by 12 concurrent reads"
    assert all(o is None or isinstance(o, redis_errors.MaxConnectionsError) for o in outcomes)
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.real_redis
async def test_the_settings_client_waits_for_a_free_connection() -> None:
    settings = CoordinationSettings(redis_url=DEFAULT_TEST_REDIS_URL, max_connections=3)
    client = settings.redis_client()
    key = unique_prefix("pool") + ":empty"
    guard = RedisGuard(redis_breaker("pool", failure_threshold=1), RetryPolicy(attempts=1))
    try:
        outcomes = await asyncio.gather(
            *(guard.run("blpop", lambda: client.blpop([key], timeout=0.1)) for _ in range(12))
        )
    finally:
        await client.aclose()
    assert outcomes == [None] * 12  # 4 rounds of 3: each waited for a free connection
    assert guard.breaker.metrics.failures == 0


@pytest.mark.real_redis
async def test_a_wait_for_a_connection_that_times_out_is_pool_exhaustion(
    store: BreakerStore,
) -> None:
    settings = CoordinationSettings(
        redis_url=DEFAULT_TEST_REDIS_URL, max_connections=2, pool_timeout_s=0.1
    )
    client = settings.redis_client()
    key = unique_prefix("pool") + ":empty"
    breaker = redis_breaker("pool", failure_threshold=1, store=store)
    guard = RedisGuard(breaker, RetryPolicy(attempts=1))
    try:
        outcomes = await asyncio.gather(
            *(guard.run("blpop", lambda: client.blpop([key], timeout=0.5)) for _ in range(6)),
            return_exceptions=True,
        )
    finally:
        await client.aclose()
    waited_too_long = [o for o in outcomes if isinstance(o, BaseException)]
    assert outcomes.count(None) == 2
    assert len(waited_too_long) == 4
    for error in waited_too_long:
        assert isinstance(error, redis_errors.MaxConnectionsError), repr(error)
        assert "no free Redis connection within 0.1s" in str(error)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics.failures == 0


async def test_connection_errors_of_the_waiting_pool_are_passed_on_unchanged() -> None:
    from tta_agent_coordination.testing import free_port

    settings = CoordinationSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = settings.redis_client()
    try:
        with pytest.raises(redis_errors.ConnectionError) as info:
            await client.ping()
    finally:
        await client.aclose()
    assert not isinstance(info.value, redis_errors.MaxConnectionsError)


@pytest.mark.real_redis
@pytest.mark.slow
async def test_many_workers_in_one_process_start_and_handle_on_a_small_pool() -> None:
    """Issue 23 item 6: 900 of 1,000 workers could not start on a pool of 100.

    Scaled down (200 workers, a pool of 20: the same ten workers per connection), built
    as an application builds them: one ``CoordinationSettings`` client, the default guard.
    Every worker starts, the breaker never opens, and every worker handles its message.
    """
    from tta_agent_coordination import (
        AgentId,
        AgentMessage,
        AgentWorker,
        MessageContext,
        MessageType,
    )
    from tta_agent_coordination.testing import delete_prefix

    workers_n = 200
    prefix = unique_prefix("pool")
    settings = CoordinationSettings(
        redis_url=DEFAULT_TEST_REDIS_URL, key_prefix=prefix, max_connections=20
    )
    client = settings.redis_client()
    coordinator = settings.build_coordinator(client)
    registry = settings.build_registry(client, coordinator=coordinator)
    handled: set[str] = set()
    everything = asyncio.Event()

    async def handle(ctx: MessageContext[Any]) -> None:
        handled.add(str(ctx.agent_id))
        if len(handled) == workers_n:
            everything.set()

    workers = []
    for i in range(workers_n):
        worker = AgentWorker(
            coordinator, registry, AgentId("many", f"w{i}"), poll_interval=0.1, concurrency=1
        )
        worker.add_handler(handle)
        workers.append(worker)
    breaker = default_redis_guard(client).breaker
    try:
        outcomes = await asyncio.gather(*(w.start() for w in workers), return_exceptions=True)
        failed = [o for o in outcomes if o is not None]
        assert not failed, f"{len(failed)} of {workers_n} workers did not start: {failed[:3]}"
        assert breaker.state is CircuitState.CLOSED
        sender = AgentId("many", "sender")
        results = await coordinator.send_many(
            [
                AgentMessage(
                    sender=sender,
                    recipient=w.agent_id,
                    message_type=MessageType.EVENT,
                    payload={},
                )
                for w in workers
            ]
        )
        assert all(r.delivered for r in results)
        await asyncio.wait_for(everything.wait(), 30)
        assert breaker.metrics.failures == 0
        assert breaker.metrics.transition_count == 0
    finally:
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        await registry.aclose()
        await coordinator.aclose()
        await delete_prefix(client, prefix)
        await client.aclose()


@pytest.mark.real_redis
async def test_the_waiting_pool_serves_waiters_in_order_and_loses_no_connection() -> None:
    from tta_agent_coordination.redis.pool import WaitingConnectionPool

    pool = WaitingConnectionPool.from_url(DEFAULT_TEST_REDIS_URL, max_connections=2, timeout=5)
    order: list[int] = []
    try:
        held = [await pool.get_connection() for _ in range(2)]

        async def waiter(i: int) -> None:
            connection = await pool.get_connection()
            order.append(i)
            await asyncio.sleep(0.01)
            await pool.release(connection)

        tasks = []
        for i in range(6):
            tasks.append(asyncio.create_task(waiter(i)))
            await asyncio.sleep(0.005)  # queue up in this order
        tasks[2].cancel()  # one gives up while waiting: its turn must not be lost
        await asyncio.sleep(0.01)
        for connection in held:
            await pool.release(connection)
        await asyncio.gather(*tasks, return_exceptions=True)
        assert order == [0, 1, 3, 4, 5]
        # Every permit came back: both connections can be taken at once again.
        again = [
            await asyncio.wait_for(pool.get_connection(), 1) for _ in range(pool.max_connections)
        ]
        for connection in again:
            await pool.release(connection)
    finally:
        await pool.aclose()
