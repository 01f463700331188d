"""The smoke path through a Sentinel-managed client (``redis+sentinel://``)."""

from __future__ import annotations

import pytest

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    AgentWorker,
    FailureType,
    MessageContext,
    MessageType,
)
from tta_agent_coordination.clients import RedisClient, is_cluster
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.redis.topology import describe_topology

pytestmark = [pytest.mark.cluster]

CALLER, SERVER = AgentId("caller", "c1"), AgentId("svc", "s1")


async def test_topology_names_the_current_primary(sentinel_client: RedisClient) -> None:
    assert not is_cluster(sentinel_client)
    topology = await describe_topology(sentinel_client)
    assert topology.kind == "sentinel"
    assert topology.service == "tta-coord"
    assert len(topology.primaries) == 1
    assert "current primary 127.0.0.1:" in topology.describe()


async def test_smoke_path_through_sentinel(
    sentinel_client: RedisClient, cluster_prefix: str
) -> None:
    coord = RedisMessageCoordinator(
        sentinel_client, key_prefix=cluster_prefix, retry_attempts=0, backoff_base=0.01
    )
    registry = RedisAgentRegistry(sentinel_client, key_prefix=cluster_prefix, coordinator=coord)
    worker = AgentWorker(coord, registry, SERVER, visibility_timeout=5)

    @worker.on_request()
    async def echo(ctx: MessageContext[dict[str, int]]) -> int:
        return ctx.payload["n"]

    try:
        async with worker:
            reply = await coord.request(CALLER, SERVER, {"n": 7}, timeout=10)
            assert reply.payload == {"result": 7}
            assert [r.agent_id for r in await registry.list_registered()] == [SERVER]
        # send, receive, nack to the DLQ, recover
        other = AgentId("svc", "s2")
        message = AgentMessage(
            message_id="msg-sentinel",
            sender=CALLER,
            recipient=other,
            message_type=MessageType.REQUEST,
        )
        assert (await coord.send_message(CALLER, other, message)).delivered
        got = await coord.receive_batch(other, 1, visibility_timeout=5, block=2)
        assert got
        assert await coord.nack(other, got[0].token, FailureType.TRANSIENT, "x")
        assert (await coord.queue_stats(other)).dead == 1
        assert await coord.recover_pending(None) == 0
    finally:
        await registry.aclose()
        await coord.aclose()
