"""``wait_replicas`` against real replicas: the Cluster's and the Sentinel setup's."""

from __future__ import annotations

import pytest

from tta_agent_coordination import AgentId, AgentMessage, MessageType, SendStatus
from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

pytestmark = [pytest.mark.cluster]

SENDER = AgentId("producer", "p1")


def _message(n: int, recipient: AgentId) -> AgentMessage:
    return AgentMessage(
        sender=SENDER, recipient=recipient, message_type=MessageType.EVENT, payload={"n": n}
    )


async def test_sends_on_the_cluster_are_confirmed_by_each_slots_replica(
    cluster_client: RedisClient, cluster_prefix: str
) -> None:
    coord = RedisMessageCoordinator(
        cluster_client, key_prefix=cluster_prefix, wait_replicas=1, wait_timeout_s=2
    )
    # Twenty queues: their hash tags spread over the three primaries.
    agents = [AgentId("spread", f"a{i}") for i in range(20)]
    results = await coord.send_many([_message(i, a) for i, a in enumerate(agents)])
    assert [r.status for r in results] == [SendStatus.ENQUEUED] * 20
    single = await coord.send_message(SENDER, agents[0], _message(99, agents[0]))
    assert single.status is SendStatus.ENQUEUED
    for agent in agents:
        assert await coord.receive(agent) is not None


async def test_sentinel_confirms_with_its_one_replica_and_not_with_two(
    sentinel_client: RedisClient, cluster_prefix: str
) -> None:
    one = RedisMessageCoordinator(
        sentinel_client, key_prefix=cluster_prefix, wait_replicas=1, wait_timeout_s=2
    )
    agent = AgentId("svc", "s1")
    assert (await one.send_message(SENDER, agent, _message(1, agent))).status is (
        SendStatus.ENQUEUED
    )
    two = RedisMessageCoordinator(
        sentinel_client, key_prefix=cluster_prefix, wait_replicas=2, wait_timeout_s=0.1
    )
    unconfirmed = await two.send_message(SENDER, agent, _message(2, agent))
    assert unconfirmed.status is SendStatus.UNKNOWN
    assert "not confirmed by 2 replica(s)" in (unconfirmed.error or "")
    assert await one.receive(agent) is not None
    assert await one.receive(agent) is not None  # in the primary all the same


async def test_a_duplicate_is_confirmed_by_a_write_of_its_own(
    cluster_client: RedisClient, cluster_prefix: str
) -> None:
    coord = RedisMessageCoordinator(
        cluster_client, key_prefix=cluster_prefix, wait_replicas=1, wait_timeout_s=2
    )
    agent = AgentId("dup", "d1")
    message = _message(1, agent)
    assert (await coord.send_message(SENDER, agent, message)).status is SendStatus.ENQUEUED
    again = await coord.send_message(SENDER, agent, message)
    assert again.status is SendStatus.DUPLICATE
    mark = coord._core.keys.queue(agent).replication_mark  # pyright: ignore[reportPrivateUsage]
    assert await cluster_client.exists(mark) == 1  # the write that WAIT confirmed
