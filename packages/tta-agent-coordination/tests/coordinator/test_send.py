import asyncio

import pytest

from tta_agent_coordination.errors import MessageValidationError, PayloadTooLargeError
from tta_agent_coordination.models import AgentId, AgentMessage, MessagePriority, MessageType
from tta_agent_coordination.redis.coordinator import QUEUE_FULL, RedisMessageCoordinator

from .conftest import RECIPIENT, SENDER, make_message


async def test_send_then_receive_round_trip(coordinator):
    message = make_message(1, correlation_id="c-1", headers={"k": "v"})
    result = await coordinator.send_message(SENDER, RECIPIENT, message)
    assert result.delivered
    assert result.error is None
    assert not result.duplicate
    assert result.message_id == message.message_id
    received = await coordinator.receive(RECIPIENT)
    assert received is not None
    assert received.message.model_dump(exclude={"timestamp"}) == message.model_dump(
        exclude={"timestamp"}
    )
    assert received.message.timestamp is not None
    assert received.attempts == 1
    assert received.queue_message.last_error is None
    assert received.visibility_deadline is not None


async def test_send_does_not_mutate_the_callers_message(coordinator):
    message = make_message(1)
    before = message.model_dump()
    await coordinator.send_message(SENDER, RECIPIENT, message)
    assert message.model_dump() == before
    assert message.timestamp is None


async def test_second_send_of_same_id_is_a_duplicate(coordinator, metrics):
    message = make_message(1)
    first = await coordinator.send_message(SENDER, RECIPIENT, message)
    second = await coordinator.send_message(SENDER, RECIPIENT, message)
    assert first.delivered
    assert not first.duplicate
    assert second.delivered
    assert second.duplicate
    stats = await coordinator.queue_stats(RECIPIENT)
    assert stats.unsettled == 1
    # still deduplicated after it settles, within the window
    received = await coordinator.receive(RECIPIENT)
    assert await coordinator.ack(RECIPIENT, received.token)
    third = await coordinator.send_message(SENDER, RECIPIENT, message)
    assert third.duplicate
    assert (await coordinator.queue_stats(RECIPIENT)).unsettled == 0
    assert metrics.total("delivered_ok") == 3


async def test_same_id_may_go_to_different_queues(coordinator):
    other = AgentId("world_builder", "w2")
    m = make_message(1)
    assert not (await coordinator.send_message(SENDER, RECIPIENT, m)).duplicate
    m2 = m.model_copy(update={"recipient": other})
    assert not (await coordinator.send_message(SENDER, other, m2)).duplicate


async def test_dedupe_window_zero_forgets_settled_ids(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, dedupe_window_s=0)
    m = make_message(1)
    await coord.send_message(SENDER, RECIPIENT, m)
    assert (await coord.send_message(SENDER, RECIPIENT, m)).duplicate  # unsettled: still a dup
    received = await coord.receive(RECIPIENT)
    await coord.ack(RECIPIENT, received.token)
    again = await coord.send_message(SENDER, RECIPIENT, m)
    assert again.delivered
    assert not again.duplicate


async def test_queue_full_is_a_result_not_an_exception(coordinator, metrics):
    await coordinator.configure(queue_size=3)
    results = [await coordinator.send_message(SENDER, RECIPIENT, make_message(i)) for i in range(5)]
    assert [r.delivered for r in results] == [True, True, True, False, False]
    assert results[3].error == QUEUE_FULL
    assert metrics.total("delivered_error") == 2
    # leased and delayed messages still count; settling frees a slot
    received = await coordinator.receive(RECIPIENT)
    assert not (await coordinator.send_message(SENDER, RECIPIENT, make_message(10))).delivered
    await coordinator.nack(RECIPIENT, received.token, error="later")
    assert not (await coordinator.send_message(SENDER, RECIPIENT, make_message(11))).delivered
    second = await coordinator.receive(RECIPIENT)
    await coordinator.ack(RECIPIENT, second.token)
    assert (await coordinator.send_message(SENDER, RECIPIENT, make_message(12))).delivered


async def test_backpressure_is_exact_under_concurrent_senders(coordinator):
    await coordinator.configure(queue_size=25)
    results = await asyncio.gather(
        *(coordinator.send_message(SENDER, RECIPIENT, make_message(i)) for i in range(120))
    )
    assert sum(r.delivered for r in results) == 25
    assert all(r.error == QUEUE_FULL for r in results if not r.delivered)
    assert (await coordinator.queue_stats(RECIPIENT)).unsettled == 25


async def test_recipient_and_sender_must_match_the_message(coordinator):
    message = make_message(1)
    with pytest.raises(MessageValidationError, match="addressed to world_builder:w1"):
        await coordinator.send_message(SENDER, AgentId("other"), message)
    with pytest.raises(MessageValidationError, match="has sender"):
        await coordinator.send_message(AgentId("other"), RECIPIENT, message)
    assert (await coordinator.queue_stats(RECIPIENT)).unsettled == 0


async def test_payload_limit(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, max_payload_bytes=2_000
    )
    ok = make_message(1)
    assert (await coord.send_message(SENDER, RECIPIENT, ok)).delivered
    big = AgentMessage(
        sender=SENDER,
        recipient=RECIPIENT,
        message_type=MessageType.EVENT,
        payload={"x": "y" * 5_000},
    )
    with pytest.raises(PayloadTooLargeError) as excinfo:
        await coord.send_message(SENDER, RECIPIENT, big)
    assert excinfo.value.limit == 2_000
    assert excinfo.value.size > 5_000
    assert big.message_id in str(excinfo.value)
    assert (await coord.queue_stats(RECIPIENT)).unsettled == 1


async def test_unserialisable_payload_is_a_clear_error(coordinator):
    message = AgentMessage(
        sender=SENDER, recipient=RECIPIENT, message_type=MessageType.EVENT, payload={"x": object()}
    )
    with pytest.raises(MessageValidationError, match="cannot be serialised"):
        await coordinator.send_message(SENDER, RECIPIENT, message)


async def test_broadcast_one_result_per_recipient_in_order(coordinator):
    recipients = [AgentId("world_builder", f"w{i}") for i in range(4)] + [
        AgentId("world_builder", "w0")
    ]
    message = make_message(7)
    results = await coordinator.broadcast_message(SENDER, message, recipients)
    assert [r.recipient for r in results] == recipients
    assert all(r.delivered for r in results)
    for r in recipients[:4]:
        got = await coordinator.receive(r)
        assert got is not None
        assert got.message.recipient == r
        assert got.message.message_id == message.message_id
    with pytest.raises(MessageValidationError):
        await coordinator.broadcast_message(AgentId("x"), message, recipients)


async def test_send_many_and_a_full_queue_in_one_batch(coordinator):
    await coordinator.configure(queue_size=3)
    others = AgentId("narrative_generator")
    batch = [make_message(i) for i in range(5)] + [make_message(9, recipient=others)]
    results = await coordinator.send_many(batch)
    assert [r.delivered for r in results] == [True, True, True, False, False, True]
    assert await coordinator.send_many([]) == []


async def test_subscriptions_and_publish_event(coordinator):
    a, b, c = AgentId("world_builder", "w1"), AgentId("narrative_generator"), AgentId("x")
    sub = coordinator.subscribe_to_messages(a, [MessageType.EVENT])
    assert sub.agent_id == a
    assert sub.message_types == [MessageType.EVENT]
    await coordinator.subscribe(b, [MessageType.EVENT, MessageType.RESPONSE])
    await coordinator.subscribe(b, [MessageType.EVENT])  # a second subscription of the same agent
    await coordinator.subscribe(c, [MessageType.RESPONSE])
    event = AgentMessage(
        sender=SENDER, recipient=SENDER, message_type=MessageType.EVENT, payload={"e": 1}
    )
    results = await coordinator.publish_event(SENDER, event)
    assert sorted(str(r.recipient) for r in results) == sorted([str(a), str(b)])
    assert all(r.delivered for r in results)
    got = await coordinator.receive(b)
    assert got.message.payload == {"e": 1}
    assert got.message.recipient == b
    assert await coordinator.receive(c) is None
    # unsubscribing one subscription keeps the agent's other one
    assert await coordinator.unsubscribe(sub.subscription_id)
    assert not await coordinator.unsubscribe(sub.subscription_id)
    assert await coordinator.subscribers(MessageType.EVENT) == [b]
    request = AgentMessage(sender=SENDER, recipient=SENDER, message_type=MessageType.REQUEST)
    assert await coordinator.publish_event(SENDER, request) == []


async def test_subscription_made_outside_a_loop_is_saved_before_publish(
    coordination_redis, key_prefix
):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    agent = AgentId("listener")
    await asyncio.to_thread(coord.subscribe_to_messages, agent, [MessageType.EVENT])
    assert await coord.subscribers(MessageType.EVENT) == [agent]


async def test_high_priority_message_is_stored_with_its_priority(coordinator):
    await coordinator.send_message(
        SENDER, RECIPIENT, make_message(1, priority=MessagePriority.HIGH)
    )
    stats = await coordinator.queue_stats(RECIPIENT)
    assert stats.ready == {
        MessagePriority.HIGH: 1,
        MessagePriority.NORMAL: 0,
        MessagePriority.LOW: 0,
    }


async def test_duplicate_within_one_batch_is_enqueued_once(coordinator):
    m = make_message(1)
    results = await coordinator.send_many([m, make_message(2), m])
    assert [r.duplicate for r in results] == [False, False, True]
    assert all(r.delivered for r in results)
    assert (await coordinator.queue_stats(RECIPIENT)).unsettled == 2
