"""``wait_replicas``: a send counts as enqueued once replicas confirmed it (WAIT).

The standalone test server has no replica, and FakeRedis has no ``WAIT``: on both, a send
with ``wait_replicas=1`` is in the queue but unconfirmed, so it is reported ``UNKNOWN``.
Confirmed sends (a real replica) are tested on the local Sentinel setup and Cluster
(``tests/cluster/test_replication.py``).
"""

from __future__ import annotations

import pytest

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId, SendStatus
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

from .conftest import SENDER, make_message

WORKER = AgentId("world_builder", "w1")


async def test_an_unconfirmed_send_is_unknown_and_still_in_the_queue(
    coordination_redis, key_prefix
):
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, wait_replicas=1, wait_timeout_s=0.05
    )
    message = make_message(1, recipient=WORKER)
    [result] = await coord.send_many([message])
    assert result.status is SendStatus.UNKNOWN
    assert not result.delivered
    assert "not confirmed by 1 replica(s) within 0.05 s" in (result.error or "")
    assert "same message_id" in (result.error or "")
    # Sent again with the same id, as the result asks: one copy in the queue.
    again = await coord.send_message(SENDER, WORKER, message)
    assert again.status is SendStatus.UNKNOWN
    got = await coord.receive(WORKER)
    assert got is not None
    assert got.message.message_id == message.message_id
    assert await coord.receive(WORKER) is None


async def test_several_queues_in_one_call_each_wait_for_their_own_writes(
    coordination_redis, key_prefix
):
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, wait_replicas=1, wait_timeout_s=0.02
    )
    agents = [AgentId("world_builder", f"w{i}") for i in range(3)]
    messages = [make_message(i, recipient=a) for i, a in enumerate(agents)]
    results = await coord.send_many(messages)
    assert [r.status for r in results] == [SendStatus.UNKNOWN] * 3
    for agent, message in zip(agents, messages, strict=True):
        got = await coord.receive(agent)
        assert got is not None
        assert got.message.message_id == message.message_id


async def test_a_refused_send_stays_refused_when_waiting_for_replicas(
    coordination_redis, key_prefix
):
    coord = RedisMessageCoordinator(
        coordination_redis,
        key_prefix=key_prefix,
        wait_replicas=1,
        wait_timeout_s=0.02,
        queue_size=1,
    )
    await coord.send_message(SENDER, WORKER, make_message(1, recipient=WORKER))
    full = await coord.send_message(SENDER, WORKER, make_message(2, recipient=WORKER))
    assert full.status is SendStatus.REFUSED  # definite: never turned into UNKNOWN


async def test_without_wait_replicas_a_send_is_enqueued_at_once(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    result = await coord.send_message(SENDER, WORKER, make_message(1, recipient=WORKER))
    assert result.status is SendStatus.ENQUEUED


async def test_a_script_unknown_to_redis_is_loaded_and_the_send_completes(
    coordination_redis, key_prefix
):
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, wait_replicas=1, wait_timeout_s=0.02
    )
    await coord.send_message(SENDER, WORKER, make_message(1, recipient=WORKER))
    await coordination_redis.script_flush()
    result = await coord.send_message(SENDER, WORKER, make_message(2, recipient=WORKER))
    assert result.status is SendStatus.UNKNOWN
    assert await coord.receive(WORKER) is not None
    assert await coord.receive(WORKER) is not None


@pytest.mark.parametrize(
    "options", [{"wait_replicas": -1}, {"wait_timeout_s": 0}, {"wait_replicas": "two"}]
)
def test_bad_replication_settings_are_refused(options):
    import fakeredis

    with pytest.raises(ConfigurationError, match="wait_"):
        RedisMessageCoordinator(fakeredis.FakeAsyncRedis(), **options)
