"""What a message store is told about each lifecycle change (``redis/lifecycle.py``).

With a store attached, each state change a script reports becomes one ``MessageEvent``;
without one, the null recorder takes every call and does nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from tta_agent_coordination.models import AgentId, FailureType
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.redis.lifecycle import NullLifecycleRecorder
from tta_agent_coordination.redis.scripts.queue_nack import RETRY_SCHEDULED, NackOutcome
from tta_agent_coordination.store import (
    AgentEvent,
    LifecycleKind,
    MessageEvent,
    MessageStore,
    RestoreTarget,
)

from .conftest import RECIPIENT, SENDER, make_message


class RecordingStore(MessageStore):
    def __init__(self) -> None:
        self.events: list[MessageEvent] = []

    async def record(self, events: Sequence[MessageEvent]) -> None:
        self.events.extend(events)

    async def record_agents(self, events: Sequence[AgentEvent]) -> None:
        pass

    async def restore(self, coordinator: RestoreTarget) -> int:
        return 0


def steps(store: RecordingStore) -> list[tuple[LifecycleKind, str, int]]:
    return [(e.kind, e.message_id, e.attempts) for e in store.events]


async def test_without_a_store_the_null_recorder_does_nothing(coordinator) -> None:
    assert coordinator.store is None
    assert coordinator.store_stats is None
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    got = await coordinator.receive(RECIPIENT)
    assert await coordinator.ack(RECIPIENT, got.token)
    await coordinator.flush_store()  # nothing to wait for


async def test_the_null_recorder_accepts_every_call() -> None:
    null = NullLifecycleRecorder()
    agent = AgentId("a")
    assert null.stats is None
    null.check_envelope("m", "x" * 10_000_000)
    await null.sent([make_message(1)], [], [1], [0])
    await null.leased(agent, [object()], [])
    await null.acked(agent, [["m", 1, 1]])
    await null.nacked(agent, NackOutcome(RETRY_SCHEDULED, "m", 1, 1), None, FailureType.TRANSIENT)
    await null.moved(agent, [["m", 1, 1, 1, "lease expired", "timeout"]])
    await null.replayed(agent, ["m"], 1)
    await null.cancelled(agent, "m", 1)
    await null.flush()
    await null.aclose()


async def test_each_step_of_a_message_is_recorded(coordination_redis, key_prefix) -> None:
    store = RecordingStore()
    coord = RedisMessageCoordinator(
        coordination_redis,
        key_prefix=key_prefix,
        store=store,
        durability="sync",
        retry_attempts=1,
        backoff_base=0,
        backoff_max=0,
    )
    message = make_message(1)
    assert (await coord.send_message(SENDER, RECIPIENT, message)).delivered
    [sent] = store.events
    assert (sent.kind, sent.recipient, sent.attempts) == (LifecycleKind.SENT, RECIPIENT, 0)
    assert sent.envelope is not None
    assert '"n":1' in sent.envelope
    incarnation = sent.incarnation
    assert incarnation > 0

    first = await coord.receive(RECIPIENT)
    assert await coord.nack(RECIPIENT, first.token, error="flaky")
    second = await coord.receive(RECIPIENT)
    assert await coord.nack(RECIPIENT, second.token, FailureType.TRANSIENT, "flaky again")
    assert await coord.replay_dead_letters(RECIPIENT) == 1
    third = await coord.receive(RECIPIENT)
    assert await coord.ack(RECIPIENT, third.token)
    await coord.flush_store()

    mid = message.message_id
    assert steps(store) == [
        (LifecycleKind.SENT, mid, 0),
        (LifecycleKind.LEASED, mid, 1),
        (LifecycleKind.RETRYING, mid, 1),
        (LifecycleKind.LEASED, mid, 2),
        (LifecycleKind.DEAD, mid, 2),
        (LifecycleKind.REPLAYED, mid, 0),
        (LifecycleKind.LEASED, mid, 1),
        (LifecycleKind.ACKED, mid, 1),
    ]
    retrying, dead, replayed = store.events[2], store.events[4], store.events[5]
    assert (retrying.error, retrying.failure) == ("flaky", FailureType.TRANSIENT)
    assert (dead.error, dead.failure) == ("flaky again", FailureType.TRANSIENT)
    # A replay is a new incarnation (the server time of the replay); the earlier steps
    # share the send's.
    assert {e.incarnation for e in store.events[:5]} == {incarnation}
    assert {e.incarnation for e in store.events[5:]} == {replayed.incarnation}
    assert replayed.incarnation >= incarnation
    assert all(e.recipient == RECIPIENT for e in store.events)
    await coord.aclose()


async def test_expiries_and_lease_timeouts_are_recorded(coordination_redis, key_prefix) -> None:
    store = RecordingStore()
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, store=store, durability="sync"
    )
    past = datetime.now(UTC) - timedelta(seconds=1)
    await coord.send_message(SENDER, RECIPIENT, make_message(1, expires_at=past))
    await coord.send_message(SENDER, RECIPIENT, make_message(2))
    await coord.receive(RECIPIENT, visibility_timeout=0.001)
    await asyncio.sleep(0.02)  # the lease (1 ms, server clock) has surely expired
    assert await coord.recover_pending(RECIPIENT) == 1
    await coord.flush_store()
    moved = [e for e in store.events if e.kind in (LifecycleKind.DEAD, LifecycleKind.RETRYING)]
    assert [(e.kind, e.message_id, e.error, e.failure) for e in moved] == [
        (LifecycleKind.DEAD, "msg-000001", "expired before delivery", FailureType.TIMEOUT),
        (LifecycleKind.RETRYING, "msg-000002", "lease expired", FailureType.TIMEOUT),
    ]
    assert [e.attempts for e in moved] == [0, 1]
    await coord.aclose()


async def test_a_duplicate_send_is_recorded_without_an_incarnation(
    coordination_redis, key_prefix
) -> None:
    store = RecordingStore()
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, store=store)
    await coord.send_message(SENDER, RECIPIENT, make_message(1))
    assert (await coord.send_message(SENDER, RECIPIENT, make_message(1))).duplicate
    await coord.flush_store()
    assert [(e.kind, e.incarnation > 0) for e in store.events] == [
        (LifecycleKind.SENT, True),
        (LifecycleKind.SENT, False),
    ]
    await coord.aclose()


async def test_a_scheduled_send_and_its_cancellation_are_recorded(
    coordination_redis, key_prefix
) -> None:
    store = RecordingStore()
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, store=store, durability="sync"
    )
    result = await coord.send_message(SENDER, RECIPIENT, make_message(1), delay_s=60)
    await coord.send_message(SENDER, RECIPIENT, make_message(2))
    assert result.scheduled_for is not None
    assert await coord.cancel_scheduled(RECIPIENT, "msg-000001")
    assert not await coord.cancel_scheduled(RECIPIENT, "msg-000002")
    await coord.flush_store()
    scheduled, ready, cancelled = store.events
    assert (scheduled.kind, scheduled.available_at_ms) == (
        LifecycleKind.SENT,
        round(result.scheduled_for.timestamp() * 1000),
    )
    assert (ready.kind, ready.available_at_ms) == (LifecycleKind.SENT, 0)
    assert (cancelled.kind, cancelled.message_id) == (LifecycleKind.CANCELLED, "msg-000001")
    assert cancelled.incarnation == scheduled.incarnation
    assert cancelled.status.settled
    await coord.aclose()


async def test_a_malformed_entry_is_recorded_as_malformed_not_timeout(
    coordination_redis, key_prefix
) -> None:
    # Issue 23: lifecycle.moved recorded every dead letter of a script as 'timeout'.
    store = RecordingStore()
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, store=store, durability="sync"
    )
    await coord.send_message(SENDER, RECIPIENT, make_message(1))
    stream = coord.keys.queue(RECIPIENT).ready[1]
    [(entry_id, _)] = await coordination_redis.xrange(stream)
    fields = dict(await coordination_redis.xrange(stream))[entry_id]
    await coordination_redis.xdel(stream, entry_id)
    await coordination_redis.xadd(stream, {**fields, b"a": b"many"})
    assert await coord.receive(RECIPIENT) is None
    await coord.flush_store()
    dead = [e for e in store.events if e.kind is LifecycleKind.DEAD]
    assert [(e.message_id, e.failure) for e in dead] == [("msg-000001", FailureType.MALFORMED)]
    assert dead[0].error is not None
    assert dead[0].error.startswith("malformed entry")
    await coord.aclose()
