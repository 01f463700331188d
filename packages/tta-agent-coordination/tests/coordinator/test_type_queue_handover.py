"""Hand-over of a dead instance's type-queue leases (issue 14 §1, "hand-over").

A worker receiving from its type queue is recorded as the lessee of each lease it takes
there (``QueueKeys.lessees``), so ``release_leases(instance)`` returns those leases at
once, not only its own queue's: another instance gets the work long before the
visibility timeout. The records follow the leases: every way a lease ends drops its
record, so they never outnumber the leases.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tta_agent_coordination.models import AgentId, AgentMessage, FailureType
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.redis.lua import ScriptSet
from tta_agent_coordination.redis.scripts import queue_dlq_reject

from .conftest import make_message

TYPE = AgentId("calc")
W1 = AgentId("calc", "w1")
W2 = AgentId("calc", "w2")
W10 = AgentId("calc", "w10")  # its name starts with W1's: the records must not mix them
LONG = 60.0  # visibility timeout no test waits for


def to_type(n: int) -> AgentMessage:
    return make_message(n, recipient=TYPE)


@pytest.fixture
def records(coordination_redis, coordinator) -> Callable[..., Awaitable[tuple[int, int]]]:
    async def count(coord: RedisMessageCoordinator = coordinator) -> tuple[int, int]:
        return await _records(coordination_redis, coord)

    return count


async def _records(client: Any, coord: RedisMessageCoordinator) -> tuple[int, int]:
    """How many lessee records the type queue holds (hash fields, index members)."""
    keys = coord.keys.queue(TYPE)
    return await client.hlen(keys.lessees), await client.zcard(keys.lessee_index)


async def test_release_leases_of_an_instance_hands_its_type_queue_work_over_at_once(
    records,
    coordinator,
):
    await coordinator.send_many([to_type(n) for n in (1, 2, 3)])
    held = await coordinator.receive_batch(W1, 3, visibility_timeout=LONG, also=[TYPE])
    assert [h.queue for h in held] == [TYPE] * 3
    assert await records() == (3, 3)
    assert await coordinator.receive_batch(W2, 3, visibility_timeout=LONG, also=[TYPE]) == []

    assert await coordinator.release_leases(W1) == 3  # W1 died

    got = await coordinator.receive_batch(W2, 3, visibility_timeout=LONG, also=[TYPE])
    assert [g.message.message_id for g in got] == [h.message.message_id for h in held]
    assert all(g.attempts == 2 for g in got)  # the release counted as a delivery
    for h in held:  # the dead instance's tokens settle nothing
        assert not await coordinator.ack(TYPE, h.token)
    assert await records() == (3, 3)  # now W2's
    assert await coordinator.ack_many(TYPE, [g.token for g in got]) == [True] * 3
    assert await records() == (0, 0)
    assert await coordinator.release_leases(W1) == 0


async def test_an_instance_release_leaves_instances_with_a_longer_name_alone(coordinator):
    await coordinator.send_many([to_type(1), to_type(2)])
    (mine,) = await coordinator.receive_batch(W1, 1, visibility_timeout=LONG, also=[TYPE])
    (theirs,) = await coordinator.receive_batch(W10, 1, visibility_timeout=LONG, also=[TYPE])
    assert await coordinator.release_leases(W1) == 1
    assert (await coordinator.queue_stats(TYPE)).leased == 1
    assert await coordinator.ack(TYPE, theirs.token)
    assert not await coordinator.ack(TYPE, mine.token)


async def test_a_release_longer_than_one_script_batch_returns_every_lease_in_lease_order(
    coordination_redis, key_prefix
):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, maintenance_batch=2)
    try:
        await coord.send_many([to_type(n) for n in range(1, 6)])
        first = await coord.receive_batch(W1, 2, visibility_timeout=LONG, also=[TYPE])
        later = await coord.receive_batch(W1, 3, visibility_timeout=LONG + 5, also=[TYPE])
        assert await coord.release_leases(W1) == 5
        got = await coord.receive_batch(W2, 5, visibility_timeout=LONG, also=[TYPE])
        assert [g.message.message_id for g in got] == [h.message.message_id for h in first + later]
    finally:
        await coord.aclose()


async def test_a_release_on_the_last_attempt_dead_letters_the_message(
    records, coordination_redis, key_prefix
):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, retry_attempts=1)
    try:
        await coord.send_message(make_message(0).sender, TYPE, to_type(1))
        for instance in (W1, W2):  # two deliveries: the first and its one retry
            assert await coord.receive_batch(instance, 1, visibility_timeout=LONG, also=[TYPE])
            assert await coord.release_leases(instance) == 1
        stats = await coord.queue_stats(TYPE)
        assert (stats.unsettled, stats.dead) == (0, 1)
        (letter,) = await coord.dead_letters(TYPE)
        assert letter.last_error == "lease released"
        assert await records(coord) == (0, 0)
    finally:
        await coord.aclose()


async def test_a_receive_that_names_no_instance_records_no_lessee(records, coordinator):
    await coordinator.send_many([to_type(1)])
    assert await coordinator.receive_batch(TYPE, 1, visibility_timeout=LONG)
    assert await records() == (0, 0)
    assert await coordinator.release_leases(W1) == 0
    assert (await coordinator.queue_stats(TYPE)).leased == 1
    assert await coordinator.release_leases(TYPE) == 1  # the type-wide release still works


async def test_an_extended_lease_keeps_its_lessee(coordinator):
    await coordinator.send_many([to_type(1)])
    (held,) = await coordinator.receive_batch(W1, 1, visibility_timeout=LONG, also=[TYPE])
    assert await coordinator.extend_lease(TYPE, held.token, LONG * 2)
    assert await coordinator.release_leases(W1) == 1


Ending = Callable[[RedisMessageCoordinator, Any, str], Awaitable[object]]


async def _expire(coord: RedisMessageCoordinator, client: Any, token: str) -> int:
    await client.zadd(coord.keys.queue(TYPE).leases, {token: 0}, xx=True)
    return await coord.recover_pending(TYPE)


async def _reject(coord: RedisMessageCoordinator, client: Any, token: str) -> int:
    # The receive path's own rejection of an undecodable delivery (queue_dlq_reject).
    call = queue_dlq_reject.call(
        coord.keys.queue(TYPE), [(token, "bad")], dlq_max_len=10, dedupe_window_ms=0
    )
    return (await ScriptSet(client).call(call)).dead_lettered


ENDINGS: dict[str, Ending] = {
    "ack": lambda coord, _, token: coord.ack(TYPE, token),
    "ack_many": lambda coord, _, token: coord.ack_many(TYPE, [token]),
    "transient nack": lambda coord, _, token: coord.nack(TYPE, token, FailureType.TRANSIENT, "x"),
    "permanent nack": lambda coord, _, token: coord.nack(TYPE, token, FailureType.PERMANENT, "x"),
    "expiry": _expire,
    "dead-letter as undecodable": _reject,
    "type-wide release": lambda coord, _, token: coord.release_leases(TYPE),
    "instance release": lambda coord, _, token: coord.release_leases(W1),
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
async def test_every_way_a_lease_ends_drops_its_lessee_record(
    records, coordination_redis, coordinator, ending
):
    await coordinator.send_many([to_type(1)])
    (held,) = await coordinator.receive_batch(W1, 1, visibility_timeout=LONG, also=[TYPE])
    assert await records() == (1, 1)
    assert await ENDINGS[ending](coordinator, coordination_redis, held.token)
    assert await records() == (0, 0)


async def test_an_expired_lease_reclaimed_by_a_receive_drops_its_record(
    records, coordination_redis, coordinator
):
    await coordinator.send_many([to_type(1)])
    (held,) = await coordinator.receive_batch(W1, 1, visibility_timeout=0.001, also=[TYPE])
    await coordination_redis.zadd(coordinator.keys.queue(TYPE).leases, {held.token: 0}, xx=True)
    (again,) = await coordinator.receive_batch(W2, 1, visibility_timeout=LONG, also=[TYPE])
    assert again.message.message_id == held.message.message_id
    assert await records() == (1, 1)  # W2's record only
    assert await coordinator.release_leases(W1) == 0
    assert await coordinator.release_leases(W2) == 1


async def test_a_record_whose_lease_vanished_is_dropped_by_the_release(
    records, coordination_redis, coordinator
):
    # An operator (or a bug elsewhere) removed the lease but not its record: the release
    # finds nothing to hand over and drops the stale record, so it cannot pile up.
    await coordinator.send_many([to_type(1)])
    (held,) = await coordinator.receive_batch(W1, 1, visibility_timeout=LONG, also=[TYPE])
    await coordination_redis.zrem(coordinator.keys.queue(TYPE).leases, held.token)
    await coordinator.release_leases(W1)
    assert await records() == (0, 0)
