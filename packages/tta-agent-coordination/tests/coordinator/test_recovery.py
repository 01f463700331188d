import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from tta_agent_coordination.errors import CircuitBreakerOpenError, CoordinatorUnavailableError
from tta_agent_coordination.models import AgentId, MessagePriority
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.redis.keys import CONSUMER_GROUP

from .conftest import RECIPIENT, SENDER, make_message


async def test_recover_pending_none_finds_queues_of_types_it_never_saw(
    coordination_redis, key_prefix
):
    producer = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    strange = [AgentId("type_nobody_knows", "i7"), AgentId("another.kind-of_agent")]
    for i, agent in enumerate(strange):
        await producer.send_message(SENDER, agent, make_message(i, recipient=agent))
        assert await producer.receive(agent, visibility_timeout=0.1) is not None
    await asyncio.sleep(0.15)
    # a fresh coordinator (another process) with no list of agent types
    recoverer = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    assert set(await recoverer.known_queues()) == set(strange)
    assert await recoverer.recover_pending() == 2
    for agent in strange:
        stats = await recoverer.queue_stats(agent)
        assert stats.ready[MessagePriority.NORMAL] == 1
        assert stats.leased == 0
    assert await recoverer.recover_pending() == 0


async def test_recover_pending_promotes_due_retries(coordinator):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    got = await coordinator.receive(RECIPIENT)
    await coordinator.nack(RECIPIENT, got.token)
    assert await coordinator.recover_pending(RECIPIENT) == 0  # not due yet
    await asyncio.sleep(0.25)
    assert await coordinator.recover_pending(RECIPIENT) == 1
    stats = await coordinator.queue_stats(RECIPIENT)
    assert (stats.delayed, stats.ready[MessagePriority.NORMAL]) == (0, 1)


async def test_recovery_handles_more_than_one_batch(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, maintenance_batch=7)
    await coord.send_many([make_message(n) for n in range(30)])
    await coord.receive_batch(RECIPIENT, 30, visibility_timeout=0.1)
    await asyncio.sleep(0.15)
    assert await coord.recover_pending(RECIPIENT) == 30
    assert (await coord.queue_stats(RECIPIENT)).ready[MessagePriority.NORMAL] == 30


async def test_a_reservation_without_lease_is_recovered(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, orphan_lease_s=0.1)
    await coord.send_message(SENDER, RECIPIENT, make_message(1))
    stream = coord.keys.queue(RECIPIENT).ready_for(MessagePriority.NORMAL)
    # a reservation made outside the scripts, by a client that then died
    await coordination_redis.xreadgroup(CONSUMER_GROUP, "crashed", {stream: ">"}, count=1)
    stats = await coord.queue_stats(RECIPIENT)
    assert stats.leased == 1
    assert await coord.receive(RECIPIENT) is None
    await asyncio.sleep(0.3)
    assert await coord.recover_pending(RECIPIENT) == 1
    got = await coord.receive(RECIPIENT)
    assert got.attempts == 2
    assert got.queue_message.last_error == "lease lost"


async def test_release_leases_hands_work_over_at_once(coordinator):
    for n in range(3):
        await coordinator.send_message(SENDER, RECIPIENT, make_message(n))
    held = await coordinator.receive_batch(RECIPIENT, 2, visibility_timeout=300)
    assert await coordinator.release_leases(RECIPIENT) == 2
    assert await coordinator.release_leases(RECIPIENT) == 0
    replacement = await coordinator.receive_batch(RECIPIENT, 3)
    assert sorted(r.message.payload["n"] for r in replacement) == [0, 1, 2]
    assert not await coordinator.ack(RECIPIENT, held[0].token)


async def test_no_per_message_residue_after_ack(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, dedupe_window_s=0, backoff_base=0, backoff_max=0
    )
    priorities = [MessagePriority.HIGH, MessagePriority.NORMAL, MessagePriority.LOW]
    await coord.send_many([make_message(n, priority=priorities[n % 3]) for n in range(300)])
    first = await coord.receive_batch(RECIPIENT, 50)
    for item in first:  # a retry round for some
        await coord.nack(RECIPIENT, item.token, error="again")
    while batch := await coord.receive_batch(RECIPIENT, 100):
        assert all(await coord.ack_many(RECIPIENT, [b.token for b in batch]))
    keys = coord.keys.queue(RECIPIENT)
    for stream in keys.ready:
        assert await coordination_redis.xlen(stream) == 0
        assert (await coordination_redis.xpending(stream, CONSUMER_GROUP))["pending"] == 0
    for key in (keys.leases, keys.delayed, keys.delayed_data, keys.dedupe, keys.dlq):
        assert not await coordination_redis.exists(key)
    # what remains is per queue, never per message: three empty streams and the index
    # what remains is per queue, never per message: three empty streams and the index
    remaining = sorted(
        [k.decode() async for k in coordination_redis.scan_iter(match=f"{key_prefix}:*")]
    )
    assert remaining == sorted([*keys.ready, coord.keys.queue_index])
    # and recovery removes the keys of a queue left with nothing
    assert await coord.recover_pending() == 0
    assert [k async for k in coordination_redis.scan_iter(match=f"{key_prefix}:*")] == []
    assert await coord.known_queues() == []


async def test_churn_of_queues_leaves_nothing_behind(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, dedupe_window_s=0)
    agents = [AgentId("worker", f"i{n}") for n in range(200)]
    busy = AgentId("worker", "busy")
    await coord.send_many([make_message(n, recipient=a) for n, a in enumerate(agents)])
    await coord.send_message(SENDER, busy, make_message(999, recipient=busy))
    for agent in agents:
        got = await coord.receive(agent)
        await coord.ack(agent, got.token)
    assert len(await coord.known_queues()) == 201
    await coord.recover_pending()
    assert await coord.known_queues() == [busy]
    keys = sorted([k.decode() async for k in coordination_redis.scan_iter(match=f"{key_prefix}:*")])
    busy_keys = coord.keys.queue(busy)
    assert keys == sorted(
        [busy_keys.ready_for(MessagePriority.NORMAL), busy_keys.dedupe, coord.keys.queue_index]
    )
    # an emptied queue works again at once
    again = await coord.send_message(SENDER, agents[0], make_message(1, recipient=agents[0]))
    assert again.delivered
    assert (await coord.receive(agents[0])) is not None


async def test_dedupe_entries_expire_after_the_window(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, dedupe_window_s=0.2)
    await coord.send_many([make_message(n) for n in range(10)])
    batch = await coord.receive_batch(RECIPIENT, 10)
    await coord.ack_many(RECIPIENT, [b.token for b in batch])
    dedupe = coord.keys.queue(RECIPIENT).dedupe
    assert await coordination_redis.zcard(dedupe) == 10
    await asyncio.sleep(0.3)
    await coord.send_message(SENDER, RECIPIENT, make_message(99))  # sends prune expired entries
    assert await coordination_redis.zcard(dedupe) == 1


async def test_survives_a_script_cache_flush(coordinator, coordination_redis):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    await coordination_redis.script_flush()
    assert (await coordinator.send_message(SENDER, RECIPIENT, make_message(2))).delivered
    await coordination_redis.script_flush()
    assert all(r.delivered for r in await coordinator.send_many([make_message(3), make_message(4)]))
    await coordination_redis.script_flush()
    got = await coordinator.receive_batch(RECIPIENT, 10)
    assert len(got) == 4
    await coordination_redis.script_flush()
    assert all(await coordinator.ack_many(RECIPIENT, [g.token for g in got]))


class FailingGuard:
    """A guard in front of a Redis that is down (or whose breaker is open).

    Setting ``error`` to None brings Redis back: calls then go through.
    """

    def __init__(self, error: BaseException | None) -> None:
        self.error = error
        self.calls: list[tuple[str, bool]] = []

    async def run(
        self, operation: str, fn: Callable[[], Awaitable[Any]], *, retry: bool = False
    ) -> Any:
        self.calls.append((operation, retry))
        if self.error is None:
            return await fn()
        raise self.error


async def test_redis_down_send_is_a_failed_result_other_calls_raise(
    coordination_redis, key_prefix, metrics
):
    guard = FailingGuard(RedisConnectionError("connection refused"))
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, guard=guard, metrics=metrics
    )
    result = await coord.send_message(SENDER, RECIPIENT, make_message(1))
    assert not result.delivered
    assert "connection refused" in result.error
    assert metrics.total("delivered_error") == 1
    assert guard.calls == [("send", True)]
    with pytest.raises(CoordinatorUnavailableError, match="receive failed"):
        await coord.receive(RECIPIENT)
    with pytest.raises(CoordinatorUnavailableError, match="ack failed"):
        await coord.ack(RECIPIENT, "1-1-0")
    with pytest.raises(CoordinatorUnavailableError):
        await coord.nack(RECIPIENT, "1-1-0")
    with pytest.raises(CoordinatorUnavailableError):
        await coord.recover_pending()
    assert ("ack", False) in guard.calls  # a settle is not blindly repeated


async def test_open_breaker_fails_sends_fast_and_receive_raises_it(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(
        coordination_redis,
        key_prefix=key_prefix,
        guard=FailingGuard(CircuitBreakerOpenError("redis", 3.0)),
    )
    result = await coord.send_message(SENDER, RECIPIENT, make_message(1))
    assert not result.delivered
    assert "circuit breaker 'redis' is open" in result.error
    with pytest.raises(CircuitBreakerOpenError):
        await coord.receive(RECIPIENT)


async def test_subscription_write_failure_is_kept_and_retried(coordination_redis, key_prefix):
    guard = FailingGuard(RedisConnectionError("down"))
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, guard=guard)
    sub = coord.subscribe_to_messages(AgentId("a"), ["event"])  # pyright: ignore[reportArgumentType]
    await coord.aclose()
    with pytest.raises(CoordinatorUnavailableError, match=sub.subscription_id):
        await coord.subscribers("event")  # pyright: ignore[reportArgumentType]
    # Redis is back: the pending subscription is written before the next lookup
    guard.error = None
    assert await coord.subscribers("event") == [AgentId("a")]  # pyright: ignore[reportArgumentType]
