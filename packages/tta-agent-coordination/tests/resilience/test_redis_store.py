"""RedisBreakerStore: state shared across breakers/processes, and local fallback.

Runs on FakeRedis and on the real Redis (``coordination_redis``). The second breaker
uses a second client of the same server: another connection for the real backend,
another client of the same FakeServer for the fake one.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tta_agent_coordination.errors import CircuitBreakerOpenError
from tta_agent_coordination.redis.breaker_scripts import BreakerScriptCall
from tta_agent_coordination.redis.breaker_store import RedisBreakerStore
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.resilience import (
    BreakerStore,
    BreakerStoreUnavailableError,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
)
from tta_agent_coordination.resilience.breaker_state import Admission, BreakerSnapshot, Outcome
from tta_agent_coordination.testing import real_redis


class Boom(Exception):
    pass


async def ok() -> str:
    return "ok"


async def boom() -> None:
    raise Boom


async def fail_n(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            await breaker.call(boom)


@pytest.fixture
async def other_client(coordination_redis: aioredis.Redis) -> AsyncIterator[aioredis.Redis]:
    server = coordination_redis.connection_pool.connection_kwargs.get("server")
    if server is not None:  # FakeRedis: another client of the same in-process server
        import fakeredis

        client: aioredis.Redis = fakeredis.FakeAsyncRedis(server=server)
    else:
        client = await real_redis()
    yield client
    await client.aclose()


CFG = CircuitBreakerConfig(
    failure_threshold=2, timeout_seconds=0.3, half_open_max_calls=2, success_threshold=2
)


async def test_open_in_one_process_rejects_in_another(
    coordination_redis: aioredis.Redis, other_client: aioredis.Redis, key_prefix: str
) -> None:
    a = CircuitBreaker("llm", CFG, RedisBreakerStore(coordination_redis, key_prefix))
    b = CircuitBreaker("llm", CFG, RedisBreakerStore(other_client, key_prefix))
    seen: list[tuple[CircuitState, CircuitState]] = []
    b.add_listener(lambda _n, old, new: seen.append((old, new)))
    await fail_n(a, 1)
    await fail_n(b, 1)  # failures from both processes add up
    assert a.state is CircuitState.CLOSED  # a has not looked since
    assert b.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenError) as info:
        await a.call(ok)
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 0.3
    assert a.state is CircuitState.OPEN
    key = KeySpace(key_prefix).breaker_state("llm")
    assert await coordination_redis.hget(key, "s") in (b"open", "open")
    assert await coordination_redis.pttl(key) > 0

    # half-open and close are shared too
    await asyncio.sleep(0.35)
    gate = asyncio.Event()

    async def probe() -> str:
        await gate.wait()
        return "ok"

    p1 = asyncio.create_task(a.call(probe))
    p2 = asyncio.create_task(b.call(probe))
    await asyncio.sleep(0.05)
    assert a.state is CircuitState.HALF_OPEN
    with pytest.raises(CircuitBreakerOpenError):  # both probe slots are taken
        await b.call(ok)
    gate.set()
    assert await asyncio.gather(p1, p2) == ["ok", "ok"]
    assert await a.call(ok) == "ok"
    assert a.state is CircuitState.CLOSED
    assert await b.call(ok) == "ok"
    assert b.state is CircuitState.CLOSED
    assert (CircuitState.CLOSED, CircuitState.OPEN) in seen


async def test_success_resets_shared_count_and_reset_is_shared(
    coordination_redis: aioredis.Redis, other_client: aioredis.Redis, key_prefix: str
) -> None:
    a = CircuitBreaker("svc", CFG, RedisBreakerStore(coordination_redis, key_prefix))
    b = CircuitBreaker("svc", CFG, RedisBreakerStore(other_client, key_prefix))
    await fail_n(a, 1)
    await b.call(ok)  # resets the shared consecutive count
    await fail_n(a, 1)
    assert a.state is CircuitState.CLOSED
    await fail_n(b, 1)
    assert b.state is CircuitState.OPEN
    await a.areset()
    assert await b.call(ok) == "ok"
    assert b.state is CircuitState.CLOSED
    b.reset()  # sync reset: the shared part runs in the background
    await b.aclose()
    assert b.state is CircuitState.CLOSED


async def test_shared_sliding_window(
    coordination_redis: aioredis.Redis, other_client: aioredis.Redis, key_prefix: str
) -> None:
    cfg = CircuitBreakerConfig(failure_threshold=100, window_size=4, failure_rate_threshold=0.5)
    a = CircuitBreaker("w", cfg, RedisBreakerStore(coordination_redis, key_prefix))
    b = CircuitBreaker("w", cfg, RedisBreakerStore(other_client, key_prefix))
    await a.call(ok)
    await fail_n(b, 1)
    await a.call(ok)
    assert a.state is CircuitState.CLOSED
    await fail_n(b, 1)  # 4 calls in the window, 2 failed
    assert b.state is CircuitState.OPEN


async def test_cancelled_shared_probe_frees_its_slot(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> None:
    cfg = CircuitBreakerConfig(
        failure_threshold=1, timeout_seconds=0.1, half_open_max_calls=1, success_threshold=1
    )
    breaker = CircuitBreaker("c", cfg, RedisBreakerStore(coordination_redis, key_prefix))
    await fail_n(breaker, 1)
    await asyncio.sleep(0.15)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(breaker.call(hang))
    await started.wait()
    with pytest.raises(CircuitBreakerOpenError):
        await breaker.call(ok)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await breaker.aclose()  # the release runs in the background
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_happy_path_costs_one_round_trip(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> None:
    class Counting(RedisBreakerStore):
        calls = 0

        async def _run(self, call: BreakerScriptCall, name: str) -> list:
            Counting.calls += 1
            return await super()._run(call, name)

    breaker = CircuitBreaker("rt", CFG, Counting(coordination_redis, key_prefix))
    for _ in range(5):
        await breaker.call(ok)
    assert Counting.calls == 5
    await fail_n(breaker, 1)
    assert Counting.calls == 7  # a failure is recorded: acquire + record
    await breaker.call(ok)
    assert Counting.calls == 9  # the success that clears the count is recorded once


# --- an unreachable or slow store -----------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def no_retry_client(port: int) -> aioredis.Redis:
    return aioredis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )


async def test_unreachable_store_falls_back_to_local_state() -> None:
    client = no_retry_client(free_port())  # nothing listens there
    store = RedisBreakerStore(client, "t", timeout_s=0.2, retry_interval_s=60)
    cfg = CircuitBreakerConfig(failure_threshold=3, timeout_seconds=0.2, success_threshold=1)
    breaker = CircuitBreaker("fb", cfg, store)
    start = time.monotonic()
    assert await breaker.call(ok) == "ok"
    assert breaker.using_fallback
    assert not store.available
    await fail_n(breaker, 3)
    assert breaker.state is CircuitState.OPEN  # tripped on local state
    with pytest.raises(CircuitBreakerOpenError):
        await breaker.call(ok)
    assert time.monotonic() - start < 1.0
    await asyncio.sleep(0.25)
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED
    await client.aclose()


async def test_slow_store_does_not_block_callers() -> None:
    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # accept, read, never answer
        writer.close()

    server = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = no_retry_client(port)
    store = RedisBreakerStore(client, "t", timeout_s=0.1, retry_interval_s=60)
    breaker = CircuitBreaker("slow", CircuitBreakerConfig(failure_threshold=2), store)
    try:
        start = time.monotonic()
        assert await breaker.call(ok) == "ok"
        first = time.monotonic() - start
        assert first < 0.4  # bounded by timeout_s
        start = time.monotonic()
        for _ in range(20):  # the store is not tried again within retry_interval_s
            await breaker.call(ok)
        await fail_n(breaker, 2)
        assert time.monotonic() - start < 0.1
        assert breaker.state is CircuitState.OPEN
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


class FlakyStore(BreakerStore):
    """Delegates to a real store, or fails while ``down``."""

    def __init__(self, inner: RedisBreakerStore) -> None:
        self.inner = inner
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise BreakerStoreUnavailableError("down")

    async def acquire(self, name: str, config: CircuitBreakerConfig, now: float) -> Admission:
        self._check()
        return await self.inner.acquire(name, config, now)

    async def record(
        self,
        name: str,
        config: CircuitBreakerConfig,
        generation: int | None,
        probe: bool,
        outcome: Outcome,
        now: float,
    ) -> BreakerSnapshot:
        self._check()
        return await self.inner.record(name, config, generation, probe, outcome, now)

    async def reset(self, name: str, now: float) -> BreakerSnapshot:
        self._check()
        return await self.inner.reset(name, now)


async def test_fallback_starts_from_last_shared_state_and_shared_wins_on_return(
    coordination_redis: aioredis.Redis, other_client: aioredis.Redis, key_prefix: str
) -> None:
    cfg = CircuitBreakerConfig(failure_threshold=2, timeout_seconds=30)
    flaky = FlakyStore(RedisBreakerStore(coordination_redis, key_prefix))
    a = CircuitBreaker("seed", cfg, flaky)
    other = CircuitBreaker("seed", cfg, RedisBreakerStore(other_client, key_prefix))
    await fail_n(other, 2)
    with pytest.raises(CircuitBreakerOpenError):
        await a.call(ok)  # a has seen the shared open state
    flaky.down = True
    with pytest.raises(CircuitBreakerOpenError) as info:
        await a.call(ok)  # still open from the seeded local state
    assert a.using_fallback
    assert info.value.retry_after is not None
    assert info.value.retry_after > 25
    await other.areset()  # meanwhile the shared state is closed
    flaky.down = False
    assert await a.call(ok) == "ok"  # back on the shared state
    assert not a.using_fallback
    assert a.state is CircuitState.CLOSED


async def test_store_failure_on_record_applies_outcome_locally(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> None:
    flaky = FlakyStore(RedisBreakerStore(coordination_redis, key_prefix))
    breaker = CircuitBreaker("rec", CircuitBreakerConfig(failure_threshold=1), flaky)

    async def fail_and_lose_store() -> None:
        flaky.down = True
        raise Boom

    with pytest.raises(Boom):
        await breaker.call(fail_and_lose_store)
    assert breaker.using_fallback
    assert breaker.state is CircuitState.OPEN
