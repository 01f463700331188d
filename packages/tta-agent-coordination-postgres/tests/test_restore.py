from __future__ import annotations

from collections import Counter

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    FailureType,
    MessagePriority,
    MessageType,
    RedisMessageCoordinator,
)
from tta_agent_coordination.store import MessageStatus
from tta_agent_coordination.testing.backends import delete_prefix

A = AgentId("producer")
QUEUES = [AgentId("worker", f"w{i}") for i in range(4)]
N = 2000


def message(i: int) -> AgentMessage:
    return AgentMessage(
        message_id=f"m-{i:06d}",
        sender=A,
        recipient=QUEUES[i % len(QUEUES)],
        message_type=MessageType.EVENT,
        payload={"i": i},
        priority=MessagePriority.HIGH if i % 7 == 0 else MessagePriority.NORMAL,
    )


async def drain(c: RedisMessageCoordinator) -> list[tuple[str, int, MessagePriority]]:
    seen: list[tuple[str, int, MessagePriority]] = []
    for q in QUEUES:
        while batch := await c.receive_batch(q, 500):
            seen += [(r.message.message_id, r.attempts, r.message.priority) for r in batch]
            await c.ack_many(q, [r.token for r in batch])
    return seen


async def test_redis_loss_restores_every_unsettled_message_once(
    coordination_redis, key_prefix, store
):
    c = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, store=store, backoff_base=0, retry_attempts=5
    )
    for start in range(0, N, 500):
        results = await c.send_many([message(i) for i in range(start, start + 500)])
        assert all(r.delivered for r in results)
    acked: set[str] = set()
    dead: set[str] = set()
    retried: set[str] = set()
    leased: set[str] = set()
    for q in QUEUES:
        batch = await c.receive_batch(q, 200, visibility_timeout=60)
        for j, r in enumerate(batch):
            mid = r.message.message_id
            if j % 4 == 0:
                acked.add(mid)
                await c.ack(q, r.token)
            elif j % 4 == 1:
                dead.add(mid)
                await c.nack(q, r.token, FailureType.PERMANENT, "no")
            elif j % 4 == 2:
                retried.add(mid)
                await c.nack(q, r.token, FailureType.TRANSIENT, "again")
            else:
                leased.add(mid)  # left leased when Redis is lost
    await c.flush_store()
    stats = await store.stats()
    assert stats.messages[MessageStatus.ACKED] == len(acked)
    assert stats.messages[MessageStatus.DEAD] == len(dead)
    assert stats.unsettled == N - len(acked) - len(dead)

    # Redis loses everything of this deployment.
    await delete_prefix(coordination_redis, key_prefix)
    assert await store.restore(c) == N - len(acked) - len(dead)
    # A second restore, and one while Redis holds every message, enqueue nothing.
    assert await store.restore(c) == 0

    seen = await drain(c)
    counts = Counter(mid for mid, _, _ in seen)
    assert set(counts) == {message(i).message_id for i in range(N)} - acked - dead
    assert max(counts.values()) == 1
    attempts = {mid: a for mid, a, _ in seen}
    # Attempts survive: a retried or leased message was delivered once before.
    assert all(attempts[m] == 2 for m in retried | leased)
    assert all(p == message(int(mid[2:])).priority for mid, _, p in seen)
    await c.aclose()
    final = await store.stats()
    assert final.unsettled == 0
    assert final.messages[MessageStatus.DEAD] == len(dead)


async def test_restore_skips_messages_redis_still_holds(coordination_redis, key_prefix, store):
    c = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, store=store)
    await c.send_many([message(i) for i in range(20)])
    await c.flush_store()
    assert await store.restore(c) == 0
    # Lose one queue only.
    q = QUEUES[0]
    for key in c.keys.queue(q).all_keys:
        await coordination_redis.delete(key)
    assert await store.restore(c) == 5
    assert len(await drain(c)) == 20
    await c.aclose()


async def test_a_type_queue_is_recorded_type_wide_and_restored_into_the_type_queue(
    coordination_redis, key_prefix, store
):
    calc = AgentId("calc")  # any instance of calc: the type queue
    c = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, store=store)
    sent = [
        AgentMessage(
            message_id=f"t-{i:04d}",
            sender=A,
            recipient=calc,
            message_type=MessageType.EVENT,
            payload={"i": i},
        )
        for i in range(6)
    ]
    assert all(r.delivered for r in await c.send_many(sent))
    [leased] = await c.receive_batch(AgentId("calc", "w1"), 1, also=[calc], visibility_timeout=60)
    assert leased.queue == calc
    await c.flush_store()
    [record] = await store.get("t-0000")
    assert record.recipient == calc  # stored as "calc", parsed back type-wide
    assert record.sender == A  # a type-wide sender stays type-wide
    assert "t-0000" in {m.message_id for m in await store.history(calc)}

    await delete_prefix(coordination_redis, key_prefix)
    assert await store.restore(c) == 6
    stats = await c.queue_stats(calc)
    assert stats.ready[MessagePriority.NORMAL] == 6
    assert (await c.queue_stats(AgentId("calc", "default"))).unsettled == 0
    again = await c.receive_batch(AgentId("calc", "w2"), 10, also=[calc])
    assert sorted(r.message.message_id for r in again) == [m.message_id for m in sent]
    assert {r.queue for r in again} == {calc}


async def test_restore_keeps_the_due_time_of_scheduled_sends(coordination_redis, key_prefix, store):
    c = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, store=store, durability="sync"
    )
    q = QUEUES[0]
    later, soon, now, cancelled = (message(i * len(QUEUES)) for i in range(4))
    [far, near, ready, gone] = await c.send_many(
        [later, soon, now, cancelled], delay_s=[600, 0.3, None, 600]
    )
    assert far.scheduled_for is not None
    assert near.scheduled_for is not None
    assert ready.scheduled_for is None
    assert gone.scheduled_for is not None
    assert await c.cancel_scheduled(q, cancelled.message_id)
    await c.flush_store()
    stats = await store.stats()
    assert stats.messages[MessageStatus.CANCELLED] == 1
    assert stats.unsettled == 3
    [record] = await store.get(cancelled.message_id)
    assert record.settled_at is not None

    await delete_prefix(coordination_redis, key_prefix)
    assert await store.restore(c) == 3
    keys = c.keys.queue(q)
    # The scheduled ones are back in the delayed set with their own due times.
    due = {
        (mid.decode() if isinstance(mid, bytes) else mid): int(score)
        for mid, score in await coordination_redis.zrange(keys.delayed, 0, -1, withscores=True)
    }
    assert due == {
        later.message_id: round(far.scheduled_for.timestamp() * 1000),
        soon.message_id: round(near.scheduled_for.timestamp() * 1000),
    }
    got = await c.receive(q, visibility_timeout=60)
    assert got is not None
    assert got.message.message_id == now.message_id
    await c.ack(q, got.token)
    # The near one falls due and is delivered; the far one still waits.
    got = await c.receive(q, visibility_timeout=60, block=5)
    assert got is not None
    assert got.message.message_id == soon.message_id
    await c.ack(q, got.token)
    stats_q = await c.queue_stats(q)
    assert (stats_q.delayed, stats_q.unsettled) == (1, 1)
    await c.flush_store()
    assert (await store.stats()).unsettled == 1
    await c.aclose()
