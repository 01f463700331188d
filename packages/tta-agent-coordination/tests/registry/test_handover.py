import asyncio

import pytest

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId, AgentMessage, MessageType
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

SENDER = AgentId("input_processor")
WORKER = AgentId("world_builder", "w1")


def request(n: int) -> AgentMessage:
    return AgentMessage(
        message_id=f"handover-{n:04d}",
        sender=SENDER,
        recipient=WORKER,
        message_type=MessageType.REQUEST,
        payload={"n": n},
    )


@pytest.fixture
async def coordinator(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    yield coord
    await coord.aclose()


async def _crashed_worker_holding(make_registry, coordinator, count: int):
    crashed = make_registry(heartbeat_ttl_s=0.3, state_retention_s=5)
    await crashed.register_id(WORKER)
    for n in range(count):
        assert (await coordinator.send_message(SENDER, WORKER, request(n))).delivered
    held = [await coordinator.receive(WORKER, visibility_timeout=30) for _ in range(count)]
    assert all(h is not None for h in held)
    assert await coordinator.receive(WORKER, visibility_timeout=30) is None
    return held  # ... and the process dies: no heartbeat, no ack, no deregister


async def test_expired_agent_hands_its_leased_messages_to_a_replacement(make_registry, coordinator):
    held = await _crashed_worker_holding(make_registry, coordinator, 3)
    monitor = make_registry()
    assert await monitor.recover_failed(coordinator) == {}  # still alive: nothing to do
    await asyncio.sleep(0.4)
    recovered = await asyncio.gather(
        monitor.recover_failed(coordinator), monitor.recover_failed(coordinator)
    )
    assert sorted(recovered, key=len) == [{}, {WORKER: 3}]  # one monitor did it, once

    replacement = make_registry()
    await replacement.register_id(WORKER)
    got = [await coordinator.receive(WORKER, visibility_timeout=30) for _ in range(3)]
    assert sorted(g.message.message_id for g in got) == sorted(h.message.message_id for h in held)
    assert all(g.attempts == 2 for g in got)
    for g in got:
        assert await coordinator.ack(WORKER, g.token) is True
    # the dead instance's tokens settle nothing
    assert await coordinator.ack(WORKER, held[0].token) is False
    stats = await coordinator.queue_stats(WORKER)
    assert stats.unsettled == 0


async def test_replacement_registration_releases_the_failed_holders_leases(
    make_registry, coordinator
):
    held = await _crashed_worker_holding(make_registry, coordinator, 2)
    await asyncio.sleep(0.4)
    # no monitor ran; the replacement registers first and takes the queue over
    replacement = make_registry(coordinator=coordinator)
    await replacement.register_id(WORKER)
    got = [await coordinator.receive(WORKER, visibility_timeout=30) for _ in range(2)]
    assert {g.message.message_id for g in got} == {h.message.message_id for h in held}
    assert await replacement.recover_failed() == {}


async def test_recover_failed_needs_a_coordinator(registry):
    with pytest.raises(ConfigurationError, match="coordinator"):
        await registry.recover_failed()


TYPE = WORKER.type_queue
OTHER = AgentId(WORKER.type, "w2")


def to_type(n: int) -> AgentMessage:
    return AgentMessage(
        message_id=f"handover-type-{n:04d}",
        sender=SENDER,
        recipient=TYPE,
        message_type=MessageType.REQUEST,
        payload={"n": n},
    )


@pytest.mark.parametrize("path", ["reaper", "replacement"])
async def test_a_dead_instances_type_queue_leases_go_to_another_instance_at_once(
    make_registry, coordinator, path
):
    # W1 holds messages of its type queue (30 s leases) and dies. Its registration is
    # reaped, or a replacement takes the id over: those leases come back at once, and
    # another instance of the type gets them long before the visibility timeout.
    crashed = make_registry(heartbeat_ttl_s=0.3, state_retention_s=5)
    await crashed.register_id(WORKER)
    assert all(r.delivered for r in await coordinator.send_many([to_type(1), to_type(2)]))
    held = await coordinator.receive_batch(WORKER, 2, visibility_timeout=30, also=[TYPE])
    assert [h.queue for h in held] == [TYPE, TYPE]
    assert await coordinator.receive_batch(OTHER, 2, visibility_timeout=30, also=[TYPE]) == []
    await asyncio.sleep(0.4)  # its liveness (0.3 s) passes: no heartbeat, no deregister

    if path == "reaper":
        assert await make_registry().recover_failed(coordinator) == {WORKER: 2}
    else:
        await make_registry(coordinator=coordinator).register_id(WORKER)

    got = await coordinator.receive_batch(OTHER, 2, visibility_timeout=30, also=[TYPE])
    assert [g.message.message_id for g in got] == [h.message.message_id for h in held]
    assert all(g.attempts == 2 for g in got)
    assert await coordinator.ack_many(TYPE, [g.token for g in got]) == [True, True]
    assert (await coordinator.queue_stats(TYPE)).unsettled == 0
