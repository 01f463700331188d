"""Parsing legacy entries: enqueue stamps, the queue a message moves to."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import redis.asyncio as aioredis

from tta_agent_coordination.models import AgentId
from tta_agents.legacy_keys import LegacyAgentKey, LegacyKeys
from tta_agents.migrate.entries import read_queue

from .conftest import WBA, LegacyWriter


async def test_enqueue_stamps_naive_or_aware_are_utc_ms(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> None:
    writer = LegacyWriter(coordination_redis, key_prefix)
    for message_id, stamp in (
        ("m-naive", "2025-10-01T12:00:00"),
        ("m-aware", "2025-10-01T12:00:00+00:00"),
        ("m-junk", "yesterday"),
    ):
        body = json.loads(writer.payload(WBA, message_id))
        body["enqueued_at"] = stamp
        await coordination_redis.rpush(f"{key_prefix}:dlq:world_builder:w1", json.dumps(body))
    queue = await read_queue(
        coordination_redis, LegacyKeys(key_prefix), LegacyAgentKey("world_builder", "w1")
    )
    expected = int(datetime(2025, 10, 1, 12, tzinfo=UTC).timestamp() * 1000)
    assert [e.enqueued_ms for e in queue.dead] == [expected, expected, 0]
    assert {e.queue for e in queue.dead} == {AgentId("world_builder", "w1")}
    assert all(e.message.recipient == AgentId("world_builder", "w1") for e in queue.dead)


def test_legacy_key_names_parse_back() -> None:
    keys = LegacyKeys("ao:")
    agent = LegacyAgentKey("world_builder", "a:b")
    assert keys.sched(agent, 5) == "ao:sched:world_builder:a:b:prio:5"
    parsed = keys.parse_sched(keys.sched(agent, 5))
    assert parsed is not None
    assert (parsed.agent, parsed.priority) == (agent, 5)
    assert keys.parse_sched("ao:sched:world_builder:prio:5") is None
    assert keys.parse_sched("ao:sched:world_builder:w1:prio:x") is None
    assert keys.parse_sched("other:sched:world_builder:w1:prio:5") is None
    assert keys.parse_agent_key(keys.dlq(agent), "dlq") == agent
    assert keys.parse_agent_key("ao:agents:index", "agents") is None
    assert keys.parse_agent_key(keys.agent(agent), "agents") == agent
    assert keys.parse_breaker(keys.breaker_state("neo4j")) == "neo4j"
    assert keys.parse_breaker("ao:cb:state:") is None
    assert LegacyKeys("a*b").pattern("dlq") == "a\\*b:dlq:*"


async def test_a_score_that_is_not_a_time_is_unmovable(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> None:
    writer = LegacyWriter(coordination_redis, key_prefix)
    body = writer.payload(WBA, "m-forever")
    await coordination_redis.zadd(
        f"{key_prefix}:sched:world_builder:w1:prio:5", {body: float("inf")}
    )
    queue = await read_queue(
        coordination_redis, LegacyKeys(key_prefix), LegacyAgentKey("world_builder", "w1")
    )
    assert queue.scheduled == []
    (kept,) = queue.unmovable
    assert kept.reason == "score inf is not a time"
