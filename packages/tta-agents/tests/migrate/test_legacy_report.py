"""legacy_report: what a legacy deployment holds, read-only."""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from tta_agent_coordination import RedisMessageCoordinator
from tta_agents.migrate import legacy_report, migrate_keys

from .conftest import LegacyWriter, write_deployment


async def test_the_report_lists_every_kind_of_legacy_key(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> None:
    writer = LegacyWriter(coordination_redis, key_prefix)
    await write_deployment(writer)
    record = {"name": "wba", "agent_id": {"type": "world_builder", "instance": "w1"}}
    await coordination_redis.set(
        f"{key_prefix}:agents:world_builder:w1", json.dumps({**record, "state": {"flag": 41}})
    )
    await coordination_redis.set(
        f"{key_prefix}:agents:input_processor:default", json.dumps(record), px=30_000
    )
    await coordination_redis.set(f"{key_prefix}:agents:broken:x", "{")
    await coordination_redis.sadd(f"{key_prefix}:agents:index", "x")
    await coordination_redis.set(
        f"{key_prefix}:cb:state:neo4j", json.dumps({"state": "open", "failure_count": 5})
    )
    await coordination_redis.set(f"{key_prefix}:cb:state:llm", "garbage")
    await coordination_redis.zadd(f"{key_prefix}:sched:world_builder:w1:prio:7", {"x": 1})
    # Leaked by the original: in the audit list only (a crash between RPUSH and ZADD).
    leak = writer.payload(("narrative_generator", "n1"), "m-leaked")
    await coordination_redis.rpush(f"{key_prefix}:queue:narrative_generator:n1", leak)
    await coordination_redis.rpush(f"{key_prefix}:queue:world_builder:w1", leak, "junk")

    report = await legacy_report(coordination_redis, key_prefix)

    rows = {q.agent: q for q in report.queues}
    wba = rows["world_builder:w1"]
    assert wba.queue == "world_builder:w1"
    assert wba.ready == {9: 2, 5: 3, 1: 1}
    assert wba.delayed == 1
    assert (wba.reserved, wba.expired) == (1, 2)  # the junk reservation is unparsable
    assert wba.dead == 1
    assert wba.unparsable == 3
    assert wba.audit == 9  # one per send, the leaked copy and junk
    assert wba.orphans == 1
    assert rows["narrative_generator:n1"].orphans == 1
    assert rows["input_processor:default"].ready == {9: 0, 5: 1, 1: 0}
    bad = rows["input_processor:spiel:1"]
    assert bad.queue is None
    assert bad.unparsable == 1
    assert report.messages == 12  # movable: the bad agent's message is unparsable
    # 4 entries, the priority-7 zset and the broken registry record
    assert len(report.unparsable) == 6
    assert any(u.key.endswith(":prio:7") for u in report.unparsable)
    assert report.subscriptions == {"world_builder:w1": ["event", "request"]}
    agents = {a.agent: a for a in report.agents}
    assert agents["world_builder:w1"].has_state
    assert agents["world_builder:w1"].ttl_ms == -1
    assert not agents["input_processor:default"].has_state
    assert 0 < agents["input_processor:default"].ttl_ms <= 30_000
    assert "index" not in {a.agent for a in report.agents}
    assert report.breakers == {"neo4j": "open", "llm": "unparsable"}
    assert report.migrated == 0

    coordinator = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    try:
        await migrate_keys(coordination_redis, coordinator, prefix=key_prefix)
    finally:
        await coordinator.aclose()
    after = await legacy_report(coordination_redis, key_prefix)
    assert after.migrated == 12
    assert after.messages == 0
    # Moved messages left their audit entries; the journal tells them from leaks.
    assert {q.agent: q.orphans for q in after.queues}["world_builder:w1"] == 1
    assert len(after.unparsable) == 6
