"""A blocked receive wakes when a retry or a scheduled send falls due before its wake-up.

A receive with nothing to reserve waits on the queue's ready streams until the wake-up
its script computed (the earliest lease deadline or due time it saw). A message added to
the delayed set *while it waits* (a nack's retry, a delayed send from any process, a
restore) is not an entry of a ready stream: the scripts that add one append to the
queue's wake stream when it moves the earliest due time earlier, and the blocked receive
waits on that stream too. Bounds are generous (the bug was a wait of the whole block).
"""

from __future__ import annotations

import asyncio
import time

from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.codec import envelope_json
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.store import PendingMessage

from .conftest import RECIPIENT, SENDER, make_message

BLOCK_S = 20.0
"""Far longer than any bound below: a receive that is not woken fails the test."""


async def wake_id(redis, coordinator: RedisMessageCoordinator, agent: AgentId = RECIPIENT):
    """Id of the wake stream's last entry, or None when it has none."""
    last = await redis.xrevrange(coordinator.keys.queue(agent).wake, count=1)
    return last[0][0] if last else None


async def blocked_receive(coordinator: RedisMessageCoordinator) -> asyncio.Task:
    """A receive blocked on RECIPIENT's empty queue, once it is waiting."""
    task = asyncio.create_task(coordinator.receive(RECIPIENT, 30, block=BLOCK_S))
    while coordinator.stream_waiter.stats.waiters < 1:  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(0.01)
    return task


async def test_a_delayed_send_from_another_coordinator_wakes_a_blocked_receive(
    coordinator: RedisMessageCoordinator, coordination_redis, key_prefix
):
    other = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    try:
        task = await blocked_receive(coordinator)
        started = time.monotonic()
        sent = await other.send_message(SENDER, RECIPIENT, make_message(1), delay_s=0.2)
        assert sent.scheduled_for is not None
        got = await asyncio.wait_for(task, BLOCK_S)
        assert got is not None
        assert got.message.message_id == "msg-000001"
        assert time.monotonic() - started < 2.0
    finally:
        await other.aclose()


async def test_a_retry_wakes_a_receive_blocked_on_its_queue(coordination_redis, key_prefix):
    coordinator = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, backoff_base=0.05, backoff_max=0.05
    )
    try:
        await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
        first = await coordinator.receive(RECIPIENT, 30)
        assert first is not None
        task = await blocked_receive(coordinator)
        started = time.monotonic()
        assert await coordinator.nack(RECIPIENT, first.token, error="again")
        again = await asyncio.wait_for(task, BLOCK_S)
        assert again is not None
        assert (again.message.message_id, again.attempts) == ("msg-000001", 2)
        assert time.monotonic() - started < 2.0
    finally:
        await coordinator.aclose()


async def test_a_restored_message_due_soon_wakes_a_blocked_receive(
    coordinator: RedisMessageCoordinator, coordination_redis
):
    task = await blocked_receive(coordinator)
    seconds, micros = await coordination_redis.time()
    due = int(seconds) * 1000 + int(micros) // 1000 + 200
    message = make_message(7)
    pending = PendingMessage(
        message_id=message.message_id,
        recipient=RECIPIENT,
        envelope=envelope_json(message),
        incarnation=1,
        available_at_ms=due,
    )
    started = time.monotonic()
    assert await coordinator.restore_messages([pending]) == [True]
    got = await asyncio.wait_for(task, BLOCK_S)
    assert got is not None
    assert got.message.message_id == "msg-000007"
    assert time.monotonic() - started < 2.0


async def test_the_wake_stream_is_written_only_when_the_next_due_time_moves_earlier(
    coordinator: RedisMessageCoordinator, coordination_redis
):
    assert await wake_id(coordination_redis, coordinator) is None
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1), delay_s=60)
    first = await wake_id(coordination_redis, coordinator)
    assert first is not None
    # Due after the earliest: every blocked receive already wakes before it.
    await coordinator.send_message(SENDER, RECIPIENT, make_message(2), delay_s=120)
    await coordinator.send_many([make_message(3), make_message(4)], delay_s=[90, 61])
    assert await wake_id(coordination_redis, coordinator) == first
    # Due before it: one entry, and the stream keeps only the newest (MAXLEN 1).
    await coordinator.send_message(SENDER, RECIPIENT, make_message(5), delay_s=30)
    second = await wake_id(coordination_redis, coordinator)
    assert second not in (None, first)
    wake_key = coordinator.keys.queue(RECIPIENT).wake
    assert await coordination_redis.xlen(wake_key) == 1
    # It expires by itself: a queue nobody schedules for again keeps no wake stream.
    assert 0 < await coordination_redis.pttl(wake_key) <= 300_000
    # A send that is ready at once never writes it.
    await coordinator.send_message(SENDER, RECIPIENT, make_message(6))
    assert await wake_id(coordination_redis, coordinator) == second


async def test_recovery_deletes_the_wake_stream_of_an_emptied_queue(coordination_redis, key_prefix):
    coordinator = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, dedupe_window_s=0
    )
    try:
        await coordinator.send_message(SENDER, RECIPIENT, make_message(1), delay_s=0.05)
        assert await wake_id(coordination_redis, coordinator) is not None
        got = await coordinator.receive(RECIPIENT, 30, block=5)
        assert got is not None
        assert await coordinator.ack(RECIPIENT, got.token)
        assert await coordinator.recover_pending() == 0
        assert [k async for k in coordination_redis.scan_iter(match=f"{key_prefix}:*")] == []
    finally:
        await coordinator.aclose()
