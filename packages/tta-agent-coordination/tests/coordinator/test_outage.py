"""The coordinator through a real Redis outage: fail fast, recover by itself, lose nothing.

A throwaway redis-server is frozen with SIGSTOP (its data stays in memory, as with a Redis
that is unreachable for a while), then resumed with SIGCONT.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tta_agent_coordination import RedisMessageCoordinator
from tta_agent_coordination.errors import CircuitBreakerOpenError
from tta_agent_coordination.resilience import CircuitState, RedisGuard, RetryPolicy, redis_breaker
from tta_agent_coordination.testing.server import (
    RedisServerNotFoundError,
    free_port,
    start_redis_server,
    stop_redis_server,
    wait_until_up,
)

from .conftest import RECIPIENT, SENDER, make_message

pytestmark = pytest.mark.real_redis


async def test_breaker_opens_fails_fast_recovers_and_nothing_is_lost():
    port = free_port()
    try:
        proc = start_redis_server(port)
    except RedisServerNotFoundError as exc:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{exc}; CI must run the outage tests")
        pytest.skip(str(exc))
    client = None
    try:
        await wait_until_up(port)
        # no hidden client-side retries: the guard decides, quickly
        client = aioredis.Redis(
            host="127.0.0.1",
            port=port,
            socket_timeout=0.2,
            socket_connect_timeout=0.2,
            retry=Retry(NoBackoff(), 0),
        )
        breaker = redis_breaker(failure_threshold=3, timeout_seconds=0.5, success_threshold=1)
        guard = RedisGuard(breaker=breaker, retry=RetryPolicy(attempts=1, name="redis"))
        coord = RedisMessageCoordinator(client, key_prefix="outage", guard=guard)

        accepted = set()
        for n in range(20):
            result = await coord.send_message(SENDER, RECIPIENT, make_message(n))
            assert result.delivered
            accepted.add(result.message_id)
        leased = await coord.receive_batch(RECIPIENT, 5, visibility_timeout=60)

        os.kill(proc.pid, signal.SIGSTOP)  # Redis stops answering
        failed = [
            await coord.send_message(SENDER, RECIPIENT, make_message(100 + n)) for n in range(3)
        ]
        assert not any(r.delivered for r in failed)
        assert breaker.state is CircuitState.OPEN
        started = time.monotonic()
        fast = [
            await coord.send_message(SENDER, RECIPIENT, make_message(200 + n)) for n in range(50)
        ]
        assert time.monotonic() - started < 0.2  # refused at once, no calls to Redis
        assert all(not r.delivered and "circuit breaker 'redis' is open" in r.error for r in fast)
        with pytest.raises(CircuitBreakerOpenError):
            await coord.receive(RECIPIENT)

        os.kill(proc.pid, signal.SIGCONT)  # Redis is back, with its data
        await asyncio.sleep(0.6)  # past timeout_seconds: the next call is a probe
        assert all(await coord.ack_many(RECIPIENT, [r.token for r in leased]))
        assert breaker.state is CircuitState.CLOSED
        # a sender retries what failed; dedupe keeps every message exactly once
        for r in [*failed, *fast]:
            message = make_message(int(r.message_id.removeprefix("msg-")))
            assert (await coord.send_message(SENDER, RECIPIENT, message)).delivered
            accepted.add(r.message_id)
        acked = {r.message.message_id for r in leased}
        while batch := await coord.receive_batch(RECIPIENT, 50):
            assert all(await coord.ack_many(RECIPIENT, [b.token for b in batch]))
            acked |= {b.message.message_id for b in batch}
        assert acked == accepted  # every accepted message was delivered and settled
        stats = await coord.queue_stats(RECIPIENT)
        assert (stats.unsettled, stats.dead) == (0, 0)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        if client is not None:
            await client.aclose()
        stop_redis_server(proc)
