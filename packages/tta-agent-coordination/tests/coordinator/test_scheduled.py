"""Sending later (issue 14 §2): ``delay_s`` / ``not_before``, and ``cancel_scheduled``.

Times are compared on the Redis server's clock, as the library does: the due time comes
back in ``MessageResult.scheduled_for``, and the moment a receive ran is its lease
deadline minus the visibility timeout. Delays are a few ms, so nothing sleeps long.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tta_agent_coordination.errors import MessageValidationError
from tta_agent_coordination.models import (
    AgentId,
    FailureType,
    MessagePriority,
    MessageType,
    ReceivedMessage,
    SendStatus,
)
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.redis.scheduling import MAX_DELAY_S

from .conftest import RECIPIENT, SENDER, make_message

VISIBILITY_S = 30


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


async def server_ms(redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


def received_at_ms(received: ReceivedMessage) -> int:
    """The server time at which the receive script ran (its lease began)."""
    deadline = datetime.fromisoformat(str(received.visibility_deadline))
    return ms(deadline) - VISIBILITY_S * 1000


async def wait_until_server(redis, at_ms: int) -> None:
    while (now := await server_ms(redis)) < at_ms:  # noqa: ASYNC110 - the server clock, not an event
        await asyncio.sleep(max(0.001, (at_ms - now) / 1000))


# --- scheduling ---------------------------------------------------------------------------


async def test_a_delayed_send_is_scheduled_counted_and_not_receivable_before_due(
    coordinator: RedisMessageCoordinator, coordination_redis
):
    before = await server_ms(coordination_redis)
    result = await coordinator.send_message(SENDER, RECIPIENT, make_message(1), delay_s=0.3)
    assert (result.delivered, result.status, result.duplicate) == (True, SendStatus.ENQUEUED, False)
    assert result.scheduled_for is not None
    due = ms(result.scheduled_for)
    assert before + 300 <= due <= await server_ms(coordination_redis) + 300
    stats = await coordinator.queue_stats(RECIPIENT)
    assert (stats.delayed, stats.unsettled) == (1, 1)
    assert await coordinator.receive(RECIPIENT) is None
    got = await coordinator.receive(RECIPIENT, VISIBILITY_S, block=5)
    assert got is not None
    assert got.message.message_id == "msg-000001"
    assert got.attempts == 1
    assert got.queue_message.last_error is None
    assert received_at_ms(got) >= due
    assert await coordinator.ack(RECIPIENT, got.token)
    assert (await coordinator.queue_stats(RECIPIENT)).unsettled == 0


async def test_a_send_without_a_delay_is_not_scheduled(coordinator: RedisMessageCoordinator):
    now = await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    zero = await coordinator.send_message(SENDER, RECIPIENT, make_message(2), delay_s=0)
    assert now.scheduled_for is None
    assert zero.scheduled_for is None
    assert (await coordinator.queue_stats(RECIPIENT)).delayed == 0


async def test_not_before_is_compared_with_the_server_clock(
    coordinator: RedisMessageCoordinator, coordination_redis
):
    at = await server_ms(coordination_redis) + 250
    when = datetime.fromtimestamp(at / 1000, UTC)
    result = await coordinator.send_message(SENDER, RECIPIENT, make_message(1), not_before=when)
    assert result.scheduled_for == when
    assert await coordinator.receive(RECIPIENT) is None
    got = await coordinator.receive(RECIPIENT, VISIBILITY_S, block=5)
    assert got is not None
    assert received_at_ms(got) >= at


async def test_a_past_not_before_sends_now(coordinator: RedisMessageCoordinator):
    past = datetime.now(UTC) - timedelta(hours=1)
    result = await coordinator.send_message(SENDER, RECIPIENT, make_message(1), not_before=past)
    assert result.delivered
    assert result.scheduled_for is None
    assert await coordinator.receive(RECIPIENT) is not None


async def test_a_scheduled_message_keeps_its_priority_and_is_a_duplicate_while_waiting(
    coordinator: RedisMessageCoordinator,
):
    high = make_message(1, priority=MessagePriority.HIGH)
    first = await coordinator.send_message(SENDER, RECIPIENT, high, delay_s=0.05)
    again = await coordinator.send_message(SENDER, RECIPIENT, high)
    assert first.scheduled_for is not None
    assert (again.delivered, again.duplicate, again.scheduled_for) == (True, True, None)
    await coordinator.send_message(SENDER, RECIPIENT, make_message(2))
    got = await coordinator.receive(RECIPIENT, VISIBILITY_S)
    assert got is not None
    assert got.message.message_id == "msg-000002"
    late = await coordinator.receive(RECIPIENT, VISIBILITY_S, block=5)
    assert late is not None
    assert (late.message.message_id, late.message.priority) == ("msg-000001", MessagePriority.HIGH)


async def test_scheduled_messages_count_against_queue_size_exactly(
    coordinator: RedisMessageCoordinator,
):
    await coordinator.configure(queue_size=2)
    results = [
        await coordinator.send_message(SENDER, RECIPIENT, make_message(i), delay_s=60)
        for i in range(3)
    ]
    assert [r.status for r in results] == [
        SendStatus.ENQUEUED,
        SendStatus.ENQUEUED,
        SendStatus.REFUSED,
    ]
    assert results[2].scheduled_for is None
    assert (await coordinator.send_message(SENDER, RECIPIENT, make_message(9))).error == (
        "queue full"
    )


async def test_send_many_schedules_each_message_on_its_own(
    coordinator: RedisMessageCoordinator,
):
    messages = [make_message(i) for i in range(3)]
    results = await coordinator.send_many(messages, delay_s=[None, 60, 0.0])
    assert [r.scheduled_for is not None for r in results] == [False, True, False]
    stats = await coordinator.queue_stats(RECIPIENT)
    assert (stats.delayed, stats.ready[MessagePriority.NORMAL]) == (1, 2)
    at = datetime.now(UTC) + timedelta(minutes=5)
    later = await coordinator.send_many([make_message(5), make_message(6)], not_before=at)
    # rounded up to the ms: never due before the instant asked for
    assert all(
        r.scheduled_for is not None and 0 <= ms(r.scheduled_for) - at.timestamp() * 1000 < 1
        for r in later
    )


async def test_broadcast_and_publish_schedule_every_copy(coordinator: RedisMessageCoordinator):
    other = AgentId("world_builder", "w2")
    results = await coordinator.broadcast_message(
        SENDER, make_message(1), [RECIPIENT, other], delay_s=60
    )
    assert all(r.scheduled_for is not None for r in results)
    await coordinator.subscribe(other, [MessageType.EVENT])
    event = make_message(2).model_copy(update={"message_type": MessageType.EVENT})
    [published] = await coordinator.publish_event(SENDER, event, delay_s=60)
    assert published.scheduled_for is not None
    assert (await coordinator.queue_stats(other)).delayed == 2
    assert (await coordinator.queue_stats(RECIPIENT)).delayed == 1


async def test_a_message_expiring_while_scheduled_is_refused_at_send(
    coordinator: RedisMessageCoordinator,
):
    soon = datetime.now(UTC) + timedelta(seconds=30)
    message = make_message(1, expires_at=soon)
    with pytest.raises(MessageValidationError, match="could never be delivered"):
        await coordinator.send_message(SENDER, RECIPIENT, message, delay_s=60)
    with pytest.raises(MessageValidationError, match="could never be delivered"):
        await coordinator.send_message(SENDER, RECIPIENT, message, not_before=soon)
    ok = await coordinator.send_message(SENDER, RECIPIENT, message, delay_s=1)
    assert ok.scheduled_for is not None


async def test_a_scheduled_message_expired_by_its_due_time_is_dead_lettered(
    coordinator: RedisMessageCoordinator, coordination_redis
):
    # Refused at send when it is already known; a clock edge is handled as any expiry.
    expires = datetime.now(UTC) + timedelta(milliseconds=400)
    message = make_message(1, expires_at=expires)
    result = await coordinator.send_message(SENDER, RECIPIENT, message, delay_s=0.2)
    assert result.scheduled_for is not None
    await wait_until_server(coordination_redis, ms(expires) + 5)
    assert await coordinator.receive(RECIPIENT) is None
    [letter] = await coordinator.dead_letters(RECIPIENT)
    assert letter.failure_type == FailureType.TIMEOUT
    assert letter.last_error == "expired before delivery"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"delay_s": -0.001}, "between 0 and"),
        ({"delay_s": math.nan}, "between 0 and"),
        ({"delay_s": math.inf}, "between 0 and"),
        ({"delay_s": MAX_DELAY_S + 1}, "between 0 and"),
        ({"delay_s": "5"}, "number of seconds"),
        ({"delay_s": True}, "number of seconds"),
        ({"not_before": datetime(2030, 1, 1)}, "timezone-aware"),
        ({"not_before": "2030-01-01"}, "must be a datetime"),
        ({"delay_s": 1, "not_before": datetime.now(UTC)}, "not both"),
    ],
)
async def test_a_bad_schedule_is_refused_before_anything_is_sent(
    coordinator: RedisMessageCoordinator, kwargs, match
):
    with pytest.raises(MessageValidationError, match=match):
        await coordinator.send_message(SENDER, RECIPIENT, make_message(1), **kwargs)
    with pytest.raises(MessageValidationError, match=match):
        await coordinator.send_many([make_message(2)], **kwargs)
    assert (await coordinator.queue_stats(RECIPIENT)).unsettled == 0


async def test_a_per_message_list_of_the_wrong_length_is_refused(
    coordinator: RedisMessageCoordinator,
):
    with pytest.raises(MessageValidationError, match="1 entries for 2 messages"):
        await coordinator.send_many([make_message(1), make_message(2)], delay_s=[1.0])
    assert (await coordinator.queue_stats(RECIPIENT)).unsettled == 0


# --- never early, always once due (Hypothesis, on the server clock) -------------------------

_queue_numbers = itertools.count()


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(delays_ms=st.lists(st.integers(0, 120), min_size=1, max_size=6))
async def test_scheduled_messages_are_never_received_early_and_always_once_due(
    coordinator: RedisMessageCoordinator, coordination_redis, delays_ms: list[int]
):
    queue = AgentId("scheduled", f"q{next(_queue_numbers)}")
    messages = [make_message(i, recipient=queue) for i in range(len(delays_ms))]
    results = await coordinator.send_many(messages, delay_s=[d / 1000 for d in delays_ms])
    due = {r.message_id: ms(r.scheduled_for) if r.scheduled_for is not None else 0 for r in results}
    pending = set(due)
    while pending:
        checked_at = await server_ms(coordination_redis)
        got = await coordinator.receive_batch(queue, 10, visibility_timeout=VISIBILITY_S)
        ids = {r.message.message_id for r in got}
        for r in got:
            assert received_at_ms(r) >= due[r.message.message_id], "received before due"
        assert {m for m in pending if due[m] <= checked_at} <= ids, "due but not received"
        assert await coordinator.ack_many(queue, [r.token for r in got]) == [True] * len(got)
        pending -= ids
        await asyncio.sleep(0.005)


# --- cancelling ---------------------------------------------------------------------------


async def test_cancel_removes_a_scheduled_send_and_forgets_its_id(
    coordinator: RedisMessageCoordinator,
):
    message = make_message(1)
    await coordinator.send_message(SENDER, RECIPIENT, message, delay_s=60)
    assert await coordinator.cancel_scheduled(RECIPIENT, message.message_id)
    stats = await coordinator.queue_stats(RECIPIENT)
    assert (stats.delayed, stats.unsettled) == (0, 0)
    assert not await coordinator.cancel_scheduled(RECIPIENT, message.message_id)
    # reschedule: the same id is a new message now
    again = await coordinator.send_message(SENDER, RECIPIENT, message, delay_s=0.01)
    assert (again.duplicate, again.scheduled_for is not None) == (False, True)
    got = await coordinator.receive(RECIPIENT, VISIBILITY_S, block=5)
    assert got is not None
    assert got.message.message_id == message.message_id


async def test_cancel_is_false_for_unknown_ready_received_and_retrying_messages(
    coordinator: RedisMessageCoordinator,
):
    assert not await coordinator.cancel_scheduled(RECIPIENT, "nobody")
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    assert not await coordinator.cancel_scheduled(RECIPIENT, "msg-000001")
    await coordinator.send_message(SENDER, RECIPIENT, make_message(2), delay_s=0.01)
    got = await coordinator.receive_batch(RECIPIENT, 2, visibility_timeout=VISIBILITY_S, block=5)
    while len(got) < 2:
        got += await coordinator.receive_batch(RECIPIENT, 2, block=5)
    assert not await coordinator.cancel_scheduled(RECIPIENT, "msg-000002")
    # a retry waiting in the delayed set is not a scheduled send
    assert await coordinator.nack(RECIPIENT, got[1].token, FailureType.TRANSIENT, "again")
    assert (await coordinator.queue_stats(RECIPIENT)).delayed == 1
    assert not await coordinator.cancel_scheduled(RECIPIENT, got[1].message.message_id)
    assert (await coordinator.queue_stats(RECIPIENT)).delayed == 1


async def test_cancel_and_due_promotion_race_with_exactly_one_winner(
    coordinator: RedisMessageCoordinator, coordination_redis
):
    count = 20
    messages = [make_message(i) for i in range(count)]
    results = await coordinator.send_many(messages, delay_s=0.05)
    dues = [ms(r.scheduled_for) for r in results if r.scheduled_for is not None]
    await wait_until_server(coordination_redis, max(dues))
    # Every message is due: the cancels race the receive that promotes them.
    receiving = asyncio.create_task(
        coordinator.receive_batch(RECIPIENT, count, visibility_timeout=VISIBILITY_S)
    )
    flags = await asyncio.gather(
        *(coordinator.cancel_scheduled(RECIPIENT, m.message_id) for m in messages[::-1])
    )
    cancelled = {m.message_id for m, ok in zip(messages[::-1], flags, strict=True) if ok}
    received = {r.message.message_id for r in await receiving}
    received |= {
        r.message.message_id
        for r in await coordinator.receive_batch(RECIPIENT, count, visibility_timeout=VISIBILITY_S)
    }
    assert cancelled.isdisjoint(received)
    assert cancelled | received == {m.message_id for m in messages}
    stats = await coordinator.queue_stats(RECIPIENT)
    assert (stats.delayed, stats.leased) == (0, len(received))
