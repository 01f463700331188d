"""Behaviours 1-22 of tta-original.md §4 (the coordinator), through ``tta_agents.compat``.

Each test is named after the original behaviour (``test_bNN_...``). Where the original
behaviour cannot hold by design (its key layout, its audit list, its DLQ list, its token
format, attempts not counting an expired lease), the test checks the documented
replacement (docs/TTA_MIGRATION_GUIDE.md, "Behaviour changes") and says so. Times are
lower bounds (a lease must have expired) or bounded waits, never "fast enough" sleeps.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError

from tta_agent_coordination.testing import (
    DEFAULT_TEST_REDIS_URL,
    RealRedisUnavailableError,
    delete_prefix,
    real_redis,
    unique_prefix,
)
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail
from tta_agents.compat import (
    AgentId,
    AgentType,
    FailureType,
    MessagePriority,
    MessageType,
    RedisMessageCoordinator,
    create_agent_id,
    poll_queue_metrics_once,
    recover_all,
    run_recovery,
)

SENDER = create_agent_id(AgentType.IPA, "sender")
RECIPIENT = create_agent_id(AgentType.WBA, "i1")


async def drain(coordinator, agent, *, vt=5.0):
    """Receive and ack until empty; the payloads in delivery order."""
    seen = []
    while (got := await coordinator.receive(agent, visibility_timeout=vt)) is not None:
        seen.append(got.message.payload)
        assert await coordinator.ack(agent, got.token)
    return seen


async def test_b01_send_delivers_one_entry_with_its_id_and_payload(coordinator, make_message):
    message = make_message(RECIPIENT, {"text": "hello"})
    result = await coordinator.send_message(SENDER, RECIPIENT, message)
    assert result.delivered
    assert result.error is None
    # Replacement of "Q(recipient) holds one JSON entry": the queue's stats and the entry.
    stats = await coordinator.queue_stats(RECIPIENT)
    assert stats.ready[MessagePriority.NORMAL] == 1
    assert stats.unsettled == 1
    got = await coordinator.receive(RECIPIENT)
    assert got is not None
    assert got.message.message_id == message.message_id
    assert got.message.payload == {"text": "hello"}


async def test_b02_broadcast_to_two_recipients_of_different_types(coordinator, make_message):
    other = create_agent_id(AgentType.NGA, "n1")
    message = make_message(RECIPIENT, {"k": 1})
    results = await coordinator.broadcast_message(SENDER, message, [RECIPIENT, other])
    assert len(results) == 2
    assert all(r.delivered for r in results)
    for agent in (RECIPIENT, other):
        assert (await coordinator.queue_stats(agent)).unsettled == 1


async def test_b03_subscribe_to_messages_is_stored(coordinator, eventually):
    agent = create_agent_id(AgentType.NGA, "subscriber")
    subscription = coordinator.subscribe_to_messages(
        agent, [MessageType.REQUEST, MessageType.EVENT]
    )
    assert subscription.agent_id == agent
    # Replacement of the set "P:subs:{type}:{inst}": the subscriber index per message type.

    async def stored() -> bool:
        return agent in await coordinator.subscribers(
            MessageType.REQUEST
        ) and agent in await coordinator.subscribers(MessageType.EVENT)

    await eventually(stored)
    assert agent not in await coordinator.subscribers(MessageType.RESPONSE)


async def test_b04_priority_first_then_fifo(coordinator, make_message):
    for i, priority in [
        (1, MessagePriority.LOW),
        (2, MessagePriority.HIGH),
        (3, MessagePriority.NORMAL),
        (4, MessagePriority.NORMAL),
    ]:
        message = make_message(RECIPIENT, {"i": i}, priority)
        assert (await coordinator.send_message(SENDER, RECIPIENT, message)).delivered
    assert [p["i"] for p in await drain(coordinator, RECIPIENT)] == [2, 3, 4, 1]


async def test_b05_nack_backs_off_then_dead_letters(coordinator, make_message, eventually):
    # The original used a 50 ms base; 300 ms keeps "an immediate receive returns None"
    # true on a loaded machine while the bounded waits keep the test short.
    await coordinator.configure(
        retry_attempts=2, backoff_base=0.3, backoff_factor=2, backoff_max=1.0
    )
    message = make_message(RECIPIENT, {"x": 1})
    await coordinator.send_message(SENDER, RECIPIENT, message)

    holder = {}

    async def received() -> bool:
        holder["got"] = await coordinator.receive(RECIPIENT)
        return holder["got"] is not None

    await eventually(received)
    for _ in range(2):  # two retries: each nack hides it for its backoff, then it is back
        started = time.monotonic()
        assert await coordinator.nack(RECIPIENT, holder["got"].token)
        assert await coordinator.receive(RECIPIENT) is None
        await eventually(received)
        assert time.monotonic() - started >= 0.3
    assert await coordinator.nack(RECIPIENT, holder["got"].token)  # third: dead
    assert await coordinator.receive(RECIPIENT) is None
    # Replacement of "LLEN DLQ >= 1": the dead-letter stream.
    assert (await coordinator.queue_stats(RECIPIENT)).dead == 1
    [dead] = await coordinator.dead_letters(RECIPIENT)
    assert dead.message.message_id == message.message_id
    assert dead.attempts == 3


async def test_b06_unacked_lease_is_recovered_and_redelivered(coordinator, make_message):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT, {"x": 6}))
    first = await coordinator.receive(RECIPIENT, visibility_timeout=0.05)
    assert first is not None
    await asyncio.sleep(0.06)  # a lower bound: the lease has expired by then
    assert await coordinator.recover_pending(RECIPIENT) >= 1
    again = await coordinator.receive(RECIPIENT)
    assert again is not None
    assert again.message.message_id == first.message.message_id
    # Behaviour change: the expired lease counted as a delivery attempt.
    assert again.queue_message.delivery_attempts == 2
    assert await coordinator.ack(RECIPIENT, again.token)


async def test_b07_queue_full_is_refused_with_the_original_error(coordinator, make_message):
    await coordinator.configure(queue_size=1)
    first = await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    second = await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    assert first.delivered
    assert not second.delivered
    assert second.error == "queue full"


async def test_b08_metrics_count_deliveries_nacks_and_backoff(
    coordinator, make_message, eventually
):
    await coordinator.configure(backoff_base=0.05)
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    assert coordinator.metrics.delivery.delivered_ok >= 1
    got = await coordinator.receive(RECIPIENT)
    assert await coordinator.nack(RECIPIENT, got.token)
    holder = {}

    async def received() -> bool:
        holder["got"] = await coordinator.receive(RECIPIENT)
        return holder["got"] is not None

    await eventually(received)
    assert await coordinator.ack(RECIPIENT, holder["got"].token)
    retry = coordinator.metrics.retry
    assert retry.total_nacks >= 1
    assert retry.total_retries_scheduled >= 1
    assert retry.last_backoff_seconds == pytest.approx(0.05)
    snapshot = coordinator.metrics.snapshot()
    assert set(snapshot) == {"retry", "delivery", "gauges", "last_update"}
    assert snapshot["delivery"]["delivered_ok"] >= 1


async def test_b09_global_recover_pending_finds_every_queue(coordinator, make_message):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    assert await coordinator.receive(RECIPIENT, visibility_timeout=0.05) is not None
    await asyncio.sleep(0.06)
    assert await coordinator.recover_pending(None) >= 1
    assert await coordinator.receive(RECIPIENT) is not None


async def test_b09_global_recovery_covers_any_agent_type(coordinator, make_message):
    # The original scanned IPA/WBA/NGA only; OpenHands (and any type) is recovered now.
    agent = create_agent_id(AgentType.OPENHANDS, "oh1")
    await coordinator.send_message(SENDER, agent, make_message(agent))
    assert await coordinator.receive(agent, visibility_timeout=0.05) is not None
    await asyncio.sleep(0.06)
    assert await coordinator.recover_pending(None) == 1


async def test_b10_key_layout_is_replaced_by_hash_tagged_keys(
    coordinator, coordination_redis, key_prefix, make_message
):
    # The original layout (P:sched:..., P:queue:..., P:reserved...) is gone by design:
    # every queue key carries its queue's hash tag (Redis Cluster safe).
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    keys = [k.decode() async for k in coordination_redis.scan_iter(match=f"{key_prefix}:*")]
    assert keys
    legacy = (":sched:", ":queue:", ":reserved", ":dlq:", ":subs:")
    assert not [k for k in keys if any(part in k for part in legacy)]
    assert any("{world_builder:i1}" in k for k in keys)


async def test_b10_requeued_normal_message_is_ready_at_normal(coordinator, make_message):
    # Replacement of "repair re-queues into P:sched:{t}:{i}:prio:5": the NORMAL ready count.
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    assert await coordinator.receive(RECIPIENT, visibility_timeout=0.05) is not None
    await asyncio.sleep(0.06)
    assert await coordinator.recover_pending(RECIPIENT) == 1
    stats = await coordinator.queue_stats(RECIPIENT)
    assert stats.ready[MessagePriority.NORMAL] == 1
    assert stats.leased == 0


async def test_b10_expiring_a_reservation_by_hand_is_release_leases(coordinator, make_message):
    # Replacement of "set the deadline score to 1": release_leases expires them at once.
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    assert await coordinator.receive(RECIPIENT, visibility_timeout=60) is not None
    assert await coordinator.release_leases(RECIPIENT) == 1
    assert await coordinator.receive(RECIPIENT) is not None


async def test_b10_admin_recovery_is_keyed_like_the_original(coordinator, make_message):
    agent = create_agent_id(AgentType.IPA, "adminrecov")
    await coordinator.send_message(SENDER, agent, make_message(agent))
    assert await coordinator.receive(agent, visibility_timeout=0.05) is not None
    await asyncio.sleep(0.06)
    assert await recover_all(coordinator) == {"ipa:adminrecov": 1}
    assert await recover_all(coordinator) == {}


@pytest.mark.real_redis
async def test_b10_run_recovery_connects_by_url(make_message):
    # run_recovery connects by URL, so this runs on the real server alone (it fails,
    # not skips, when that server is required and missing, as the fixture would).
    url = os.environ.get("TTA_COORD_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    try:
        client = await real_redis(url)
    except RealRedisUnavailableError as exc:
        skip_or_fail(str(exc))
    key_prefix = unique_prefix()
    coord = RedisMessageCoordinator(client, key_prefix=key_prefix)
    try:
        agent = create_agent_id(AgentType.IPA, "adminrecov")
        await coord.send_message(SENDER, agent, make_message(agent))
        assert await coord.receive(agent, visibility_timeout=0.05) is not None
        await asyncio.sleep(0.06)
        assert await run_recovery(url, key_prefix) == {"ipa:adminrecov": 1}
    finally:
        await coord.aclose()
        await delete_prefix(client, key_prefix)
        await client.aclose()


async def test_b10_queue_gauges_are_keyed_agent_and_priority(coordinator, make_message):
    agent = create_agent_id(AgentType.IPA, "testpoll")
    await coordinator.send_message(
        SENDER, agent, make_message(agent, priority=MessagePriority.HIGH)
    )
    await coordinator.send_message(SENDER, agent, make_message(agent))
    await coordinator.send_message(SENDER, agent, make_message(agent))
    await poll_queue_metrics_once(coordinator, coordinator.metrics)
    gauges = coordinator.metrics.gauges
    assert gauges.queue_lengths[("ipa:testpoll", 9)] == 1
    assert gauges.queue_lengths[("ipa:testpoll", 5)] == 2
    assert gauges.queue_lengths[("ipa:testpoll", 1)] == 0
    assert gauges.dlq_lengths["ipa:testpoll"] == 0
    assert coordinator.metrics.snapshot()["gauges"]["queue_lengths"]["ipa:testpoll|9"] == 1


async def test_b11_receive_on_an_empty_queue_returns_none(coordinator):
    assert await coordinator.receive(RECIPIENT) is None


async def test_b12_ack_once(coordinator, make_message):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    got = await coordinator.receive(RECIPIENT)
    assert await coordinator.ack(RECIPIENT, got.token) is True
    assert await coordinator.ack(RECIPIENT, got.token) is False


async def test_b13_unknown_token_is_false(coordinator, make_message):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    got = await coordinator.receive(RECIPIENT)
    assert got is not None
    unknown = "0-0-0"
    assert await coordinator.ack(RECIPIENT, unknown) is False
    assert await coordinator.nack(RECIPIENT, unknown) is False


async def test_b14_nack_counts_attempts_including_the_current_delivery(coordinator, make_message):
    # Behaviour change: delivery_attempts counts this delivery (1 on the first); the
    # original counted failures before it (0, then 1 after a nack).
    await coordinator.configure(backoff_base=0)
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    first = await coordinator.receive(RECIPIENT)
    assert first.queue_message.delivery_attempts == 1
    assert await coordinator.nack(RECIPIENT, first.token)
    second = await coordinator.receive(RECIPIENT)
    assert second is not None
    assert second.queue_message.delivery_attempts == 2
    assert await coordinator.nack(RECIPIENT, second.token)
    third = await coordinator.receive(RECIPIENT)
    assert third is not None
    assert third.queue_message.delivery_attempts == 3


async def test_b15_permanent_nack_dead_letters_at_once(coordinator, make_message):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    got = await coordinator.receive(RECIPIENT)
    assert await coordinator.nack(RECIPIENT, got.token, FailureType.PERMANENT, "bad input")
    assert (await coordinator.queue_stats(RECIPIENT)).dead == 1
    [dead] = await coordinator.dead_letters(RECIPIENT)
    assert dead.failure_type is FailureType.PERMANENT
    assert dead.last_error == "bad input"


async def test_b16_retry_attempts_one_dead_letters_on_the_second_nack(coordinator, make_message):
    await coordinator.configure(retry_attempts=1, backoff_base=0)
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    got = await coordinator.receive(RECIPIENT)
    assert await coordinator.nack(RECIPIENT, got.token)
    assert (await coordinator.queue_stats(RECIPIENT)).dead == 0
    got = await coordinator.receive(RECIPIENT)
    assert await coordinator.nack(RECIPIENT, got.token)
    assert (await coordinator.queue_stats(RECIPIENT)).dead == 1
    assert await coordinator.receive(RECIPIENT) is None


async def _recover_until(coordinator, agent, expected, eventually):
    total = 0

    async def done() -> bool:
        nonlocal total
        total += await coordinator.recover_pending(agent)
        return total >= expected

    await eventually(done)
    return total


async def test_b17_zero_visibility_timeout_expires_at_once(coordinator, make_message, eventually):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    assert await coordinator.receive(RECIPIENT, visibility_timeout=0) is not None
    assert await _recover_until(coordinator, RECIPIENT, 1, eventually) == 1


async def test_b18_global_recovery_of_two_instances(coordinator, make_message, eventually):
    other = create_agent_id(AgentType.WBA, "i2")
    for agent in (RECIPIENT, other):
        await coordinator.send_message(SENDER, agent, make_message(agent))
        assert await coordinator.receive(agent, visibility_timeout=0) is not None
    assert await _recover_until(coordinator, None, 2, eventually) == 2


async def test_b19_an_undecodable_entry_is_dead_lettered_not_delivered(
    coordinator, coordination_redis, make_message
):
    # Replacement: a reservation cannot hold an unparsable payload any more; an entry that
    # does not decode is dead-lettered (MALFORMED) when a consumer reaches it.
    stream = coordinator.keys.queue(RECIPIENT).ready_for(MessagePriority.NORMAL)
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT, {"ok": 1}))
    await coordination_redis.xadd(
        stream,
        {
            "i": "bad-entry-1",
            "m": "{not json",
            "a": "0",
            "e": "",
            "x": "0",
            "t": str(int(time.time() * 1000)),
        },
    )
    got = await coordinator.receive(RECIPIENT)
    assert got is not None
    assert got.message.payload == {"ok": 1}
    assert await coordinator.ack(RECIPIENT, got.token)
    assert await coordinator.receive(RECIPIENT) is None
    assert await coordinator.recover_pending(RECIPIENT) == 0
    assert (await coordinator.queue_stats(RECIPIENT)).dead == 1


class FailingGuard:
    """A guard in front of a Redis that is down."""

    async def run(self, operation, fn, *, retry=False):
        raise RedisConnectionError("connection refused")


async def test_b20_redis_error_during_send_is_a_failed_result(
    coordination_redis, key_prefix, make_message
):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix, guard=FailingGuard())
    try:
        result = await coord.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
        assert not result.delivered
        assert result.error
        assert coord.metrics.delivery.delivered_error == 1
    finally:
        await coord.aclose()


async def test_b21_ids_are_opaque_unique_strings(coordinator, make_message):
    # Replacement: "sub_" / "res_" prefixes are gone; ids are opaque, never parse them.
    subs = {
        (await coordinator.subscribe(RECIPIENT, [MessageType.EVENT])).subscription_id
        for _ in range(3)
    }
    assert len(subs) == 3
    assert all(subs)
    for _ in range(3):
        await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    tokens = {(await coordinator.receive(RECIPIENT)).token for _ in range(3)}
    assert len(tokens) == 3
    assert all(tokens)


async def test_b22_configure_changes_only_what_it_is_given(coordinator):
    before = coordinator.config
    await coordinator.configure(retry_attempts=7)
    after = coordinator.config
    assert after.retry_attempts == 7
    assert after.model_dump(exclude={"retry_attempts"}) == before.model_dump(
        exclude={"retry_attempts"}
    )


async def test_compat_defaults_prefix_and_stripped_colon(coordination_redis):
    coord = RedisMessageCoordinator(coordination_redis)
    other = RedisMessageCoordinator(coordination_redis, "ao:")
    try:
        assert coord.keys.prefix == "ao"
        assert other.keys.prefix == "ao"
        assert coord.config.queue_size == 10_000
        assert coord.config.retry_attempts == 3
        assert coord.config.backoff_base == 1.0
        assert coord.config.backoff_max == 30.0
    finally:
        await coord.aclose()
        await other.aclose()


async def test_compat_empty_prefix_is_refused(coordination_redis):
    from tta_agents.compat import ConfigurationError

    with pytest.raises(ConfigurationError, match="empty"):
        RedisMessageCoordinator(coordination_redis, ":")


async def test_compat_recipient_mismatch_is_a_clear_error(coordinator, make_message):
    from tta_agent_coordination.errors import MessageValidationError

    message = make_message(AgentId("world_builder", "elsewhere"))
    with pytest.raises(MessageValidationError):
        await coordinator.send_message(SENDER, RECIPIENT, message)


async def test_compat_negative_visibility_is_refused(coordinator):
    from tta_agents.compat import ConfigurationError

    with pytest.raises(ConfigurationError):
        await coordinator.receive(RECIPIENT, visibility_timeout=-1)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(priorities=st.lists(st.sampled_from(list(MessagePriority)), min_size=1, max_size=10))
async def test_b04_property_priority_then_send_order(coordination_redis, make_message, priorities):
    prefix = unique_prefix()
    coord = RedisMessageCoordinator(coordination_redis, prefix)
    try:
        for i, priority in enumerate(priorities):
            message = make_message(RECIPIENT, {"i": i}, priority)
            assert (await coord.send_message(SENDER, RECIPIENT, message)).delivered
        order = [p["i"] for p in await drain(coord, RECIPIENT)]
        expected = sorted(range(len(priorities)), key=lambda i: (-priorities[i], i))
        assert order == expected
    finally:
        await coord.aclose()
        await delete_prefix(coordination_redis, prefix)
