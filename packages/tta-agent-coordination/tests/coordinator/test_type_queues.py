"""Type-wide queues: ``AgentId(type)`` is "any instance of the type" (issue 14 §1).

A type queue has its own hash tag ``{type}``, the same keys and the same scripts as an
instance queue; instances compete for its messages with ``receive_batch(..., also=)``.
"""

import asyncio

import pytest

from tta_agent_coordination.models import AgentId, AgentMessage, FailureType, MessagePriority
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.redis.keys import KeySpace

from .conftest import SENDER, make_message

TYPE = AgentId("calc")
W1 = AgentId("calc", "w1")
W2 = AgentId("calc", "w2")


def to_type(n: int, **extra) -> AgentMessage:
    return make_message(n, recipient=TYPE, **extra)


# --- keys ------------------------------------------------------------------------------


def test_a_type_queue_has_its_own_hash_tag_and_the_same_key_suffixes():
    keys = KeySpace("p")
    typed, instance = keys.queue(TYPE), keys.queue(W1)
    assert typed.tag == "p:{calc}"
    assert instance.tag == "p:{calc:w1}"
    suffixes = [k.removeprefix(typed.tag) for k in typed.all_keys]
    assert suffixes == [k.removeprefix(instance.tag) for k in instance.all_keys]
    assert keys.queue(AgentId("calc", "default")).tag == "p:{calc:default}"


def test_agent_from_key_gives_the_type_wide_id_for_a_type_queue_key():
    keys = KeySpace("p")
    assert keys.agent_from_key(keys.queue(TYPE).dedupe) == TYPE
    assert keys.agent_from_key(keys.queue(W1).dedupe) == W1


def test_registry_keys_of_a_type_wide_id_are_its_default_instance():
    keys = KeySpace("p")
    assert keys.registry_agent(TYPE) == keys.registry_agent(AgentId("calc", "default"))
    assert keys.registry_state(TYPE) == keys.registry_state(AgentId("calc", "default"))


# --- sending and receiving ---------------------------------------------------------------


async def test_a_send_to_a_type_goes_to_the_type_queue_not_to_an_instance(coordinator):
    result = await coordinator.send_message(SENDER, TYPE, to_type(1))
    assert result.delivered
    assert result.recipient == TYPE
    assert (await coordinator.queue_stats(TYPE)).ready[MessagePriority.NORMAL] == 1
    assert (await coordinator.queue_stats(W1)).unsettled == 0
    assert (await coordinator.queue_stats(AgentId("calc", "default"))).unsettled == 0
    assert TYPE in await coordinator.known_queues()


async def test_receive_takes_the_own_queue_first_then_the_type_queue(coordinator):
    await coordinator.send_message(SENDER, TYPE, to_type(1, priority=MessagePriority.HIGH))
    await coordinator.send_message(SENDER, TYPE, to_type(2))
    await coordinator.send_message(SENDER, W1, make_message(3, recipient=W1))
    batch = await coordinator.receive_batch(W1, 10, also=[TYPE])
    # own queue first; within the type queue, HIGH before NORMAL
    assert [r.message.payload["n"] for r in batch] == [3, 1, 2]
    assert [r.queue for r in batch] == [W1, TYPE, TYPE]


async def test_receive_fills_only_the_free_count_from_the_type_queue(coordinator):
    await coordinator.send_many([to_type(n) for n in range(5)])
    await coordinator.send_message(SENDER, W1, make_message(9, recipient=W1))
    batch = await coordinator.receive_batch(W1, 3, also=[TYPE])
    assert [r.message.payload["n"] for r in batch] == [9, 0, 1]
    stats = await coordinator.queue_stats(TYPE)
    assert (stats.leased, stats.ready[MessagePriority.NORMAL]) == (2, 3)


async def test_without_also_an_instance_never_sees_the_type_queue(coordinator):
    await coordinator.send_message(SENDER, TYPE, to_type(1))
    assert await coordinator.receive_batch(W1, 5) == []
    got = await coordinator.receive(TYPE)
    assert got is not None
    assert got.queue == TYPE


async def test_settling_works_on_the_queue_a_message_came_from_only(coordinator):
    await coordinator.send_many([to_type(1), to_type(2)])
    first, second = await coordinator.receive_batch(W1, 2, also=[TYPE])
    assert await coordinator.ack(W1, first.token) is False  # not W1's
    assert await coordinator.ack(first.queue, first.token) is True
    assert await coordinator.extend_lease(second.queue, second.token, 5) is True
    assert await coordinator.nack(second.queue, second.token, FailureType.PERMANENT, "no") is True
    stats = await coordinator.queue_stats(TYPE)
    assert (stats.unsettled, stats.dead) == (0, 1)


async def test_competing_instances_never_hold_the_same_message(coordinator):
    await coordinator.send_many([to_type(n) for n in range(40)])

    async def drain(instance: AgentId) -> list[int]:
        got: list[int] = []
        while batch := await coordinator.receive_batch(instance, 3, also=[TYPE]):
            got += [r.message.payload["n"] for r in batch]
            assert await coordinator.ack_many(TYPE, [r.token for r in batch]) == [True] * len(batch)
        return got

    one, two = await asyncio.gather(drain(W1), drain(W2))
    assert sorted(one + two) == list(range(40))
    assert not set(one) & set(two)


async def test_a_transient_nack_is_retried_on_the_type_queue_for_any_instance(coordinator):
    await coordinator.send_message(SENDER, TYPE, to_type(1))
    got = (await coordinator.receive_batch(W1, 1, also=[TYPE]))[0]
    assert await coordinator.nack(got.queue, got.token, FailureType.TRANSIENT, "later")
    assert (await coordinator.queue_stats(TYPE)).delayed == 1
    again = await coordinator.receive_batch(W2, 1, also=[TYPE], block=3)
    assert [r.message.message_id for r in again] == [got.message.message_id]
    assert again[0].attempts == 2
    assert again[0].queue == TYPE


async def test_one_blocking_wait_covers_both_queues(coordinator):
    async def later() -> None:
        await asyncio.sleep(0.2)
        await coordinator.send_message(SENDER, TYPE, to_type(7))

    sender = asyncio.create_task(later())
    batch = await coordinator.receive_batch(W1, 1, also=[TYPE], block=5)
    await sender
    assert [r.message.payload["n"] for r in batch] == [7]


async def test_an_interrupt_ends_a_blocking_receive_at_once_and_loses_nothing(coordinator):
    interrupt = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()
    receive = asyncio.create_task(
        coordinator.receive_batch(W1, 1, also=[TYPE], block=60, interrupt=interrupt)
    )
    await asyncio.sleep(0.1)
    interrupt.set()
    assert await asyncio.wait_for(receive, 10) == []
    assert loop.time() - started < 10
    assert coordinator.stream_waiter.stats.waiters == 0
    # a set interrupt does not stop a receive that finds messages
    await coordinator.send_message(SENDER, TYPE, to_type(1))
    got = await coordinator.receive_batch(W1, 1, also=[TYPE], block=60, interrupt=interrupt)
    assert [r.message.payload["n"] for r in got] == [1]


async def test_dedupe_and_exact_backpressure_hold_on_a_type_queue(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, queue_size=3)
    try:
        results = await coord.send_many([to_type(n) for n in range(5)])
        assert [r.delivered for r in results] == [True, True, True, False, False]
        assert results[3].error == "queue full"
        duplicate = await coord.send_message(SENDER, TYPE, to_type(0))
        assert duplicate.duplicate
    finally:
        await coord.aclose()


# --- recovery, hand-over, dead letters ----------------------------------------------------


async def test_recover_pending_none_recovers_expired_leases_of_a_type_queue(
    coordination_redis, key_prefix
):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    try:
        await coord.send_message(SENDER, TYPE, to_type(1))
        assert await coord.receive_batch(W1, 1, also=[TYPE], visibility_timeout=0.1)
        await asyncio.sleep(0.2)
        other = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
        assert await other.known_queues() == [TYPE]
        assert await other.recover_pending() == 1
        stats = await other.queue_stats(TYPE)
        assert (stats.leased, stats.ready[MessagePriority.NORMAL]) == (0, 1)
        await other.aclose()
    finally:
        await coord.aclose()


async def test_releasing_an_instance_leaves_other_instances_type_queue_leases(coordinator):
    await coordinator.send_many([to_type(1), make_message(2, recipient=W1), to_type(3)])
    mine = await coordinator.receive_batch(W1, 2, also=[TYPE])
    theirs = await coordinator.receive_batch(W2, 1, also=[TYPE])
    assert [r.queue for r in mine + theirs] == [W1, TYPE, TYPE]
    # W1's own lease and the one it held in the type queue; W2's stays leased.
    assert await coordinator.release_leases(W1) == 2
    assert (await coordinator.queue_stats(TYPE)).leased == 1
    assert await coordinator.ack(TYPE, theirs[0].token)


async def test_dead_letters_of_a_type_queue_can_be_listed_replayed_and_purged(coordinator):
    await coordinator.send_many([to_type(1), to_type(2)])
    for got in await coordinator.receive_batch(W1, 2, also=[TYPE]):
        await coordinator.nack(got.queue, got.token, FailureType.PERMANENT, "bad")
    letters = await coordinator.dead_letters(TYPE)
    assert sorted(d.message_id for d in letters) == ["msg-000001", "msg-000002"]
    assert await coordinator.replay_dead_letters(TYPE, ["msg-000001"]) == 1
    again = await coordinator.receive_batch(W2, 5, also=[TYPE])
    assert [r.message.message_id for r in again] == ["msg-000001"]
    assert await coordinator.purge_dead_letters(TYPE) == 1
    assert (await coordinator.queue_stats(TYPE)).dead == 0


@pytest.mark.parametrize("queue", [TYPE, W1])
async def test_stats_count_each_kind_of_queue_separately(coordinator, queue):
    await coordinator.send_message(SENDER, queue, make_message(1, recipient=queue))
    stats = await coordinator.queue_stats(queue)
    assert stats.agent_id == queue
    assert stats.ready[MessagePriority.NORMAL] == 1
