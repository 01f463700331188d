"""Saved agent states: legacy records' ``state`` seeded into the new registry."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from tta_agent_coordination import AgentId, RedisAgentRegistry, RedisMessageCoordinator
from tta_agents.migrate import migrate_keys

W1 = AgentId("world_builder", "w1")
RECORD = {"name": "wba", "agent_id": {"type": "world_builder", "instance": "w1"}}


class Agent:
    """A registrable agent that imports its saved state."""

    def __init__(self, agent_id: AgentId) -> None:
        self.agent_id = agent_id
        self.name = str(agent_id)
        self.imported: list[Any] = []

    def import_state(self, state: Any) -> None:
        self.imported.append(state)


async def _legacy_state(client: aioredis.Redis, prefix: str, agent: str, state: Any) -> None:
    await client.set(f"{prefix}:agents:{agent}", json.dumps({**RECORD, "state": state}))


async def test_a_saved_state_reaches_the_agents_next_registration(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> None:
    legacy = f"{key_prefix}-old"
    await _legacy_state(coordination_redis, legacy, "world_builder:w1", {"turn": 9})
    await coordination_redis.set(f"{legacy}:agents:input_processor:i1", json.dumps(RECORD))
    coordinator = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    registry = RedisAgentRegistry(coordination_redis, key_prefix=key_prefix)
    try:
        report = await migrate_keys(
            coordination_redis, coordinator, prefix=legacy, registry=registry
        )
        assert (report.states_seeded, report.states_kept) == (1, 0)
        again = await migrate_keys(
            coordination_redis, coordinator, prefix=legacy, registry=registry
        )
        assert (again.states_seeded, again.states_kept) == (0, 1)  # a rerun changes nothing
        agent = Agent(W1)
        await registry.register(agent)
        assert agent.imported == [{"turn": 9}]
    finally:
        await registry.aclose()
        await coordinator.aclose()
        async for key in coordination_redis.scan_iter(match=f"{legacy}:*"):
            await coordination_redis.delete(key)


async def test_a_live_agent_keeps_its_own_state_and_the_record_is_listed(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> None:
    legacy = f"{key_prefix}-old"
    await _legacy_state(coordination_redis, legacy, "world_builder:w1", {"turn": 9})
    coordinator = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    registry = RedisAgentRegistry(coordination_redis, key_prefix=key_prefix)
    try:
        await registry.register(Agent(W1))
        report = await migrate_keys(
            coordination_redis, coordinator, prefix=legacy, registry=registry
        )
        assert report.states_seeded == 0
        [left] = [u for u in report.unmovable if u.key.endswith("agents:world_builder:w1")]
        assert "registered and live" in left.reason
    finally:
        await registry.aclose()
        await coordinator.aclose()
        async for key in coordination_redis.scan_iter(match=f"{legacy}:*"):
            await coordination_redis.delete(key)


async def test_a_dry_run_counts_the_states_and_writes_none(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> None:
    legacy = f"{key_prefix}-old"
    await _legacy_state(coordination_redis, legacy, "world_builder:w1", {"turn": 9})
    coordinator = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    registry = RedisAgentRegistry(coordination_redis, key_prefix=key_prefix)
    try:
        report = await migrate_keys(
            coordination_redis, coordinator, prefix=legacy, registry=registry, dry_run=True
        )
        assert report.states_seeded == 1
        assert await coordination_redis.exists(registry.keys.registry_state(W1)) == 0
    finally:
        await registry.aclose()
        await coordinator.aclose()
        async for key in coordination_redis.scan_iter(match=f"{legacy}:*"):
            await coordination_redis.delete(key)


async def test_without_a_registry_states_stay_in_the_legacy_records(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> None:
    legacy = f"{key_prefix}-old"
    await _legacy_state(coordination_redis, legacy, "world_builder:w1", {"turn": 9})
    coordinator = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    try:
        report = await migrate_keys(coordination_redis, coordinator, prefix=legacy)
        assert report.states_seeded == 0
        assert await coordination_redis.exists(f"{legacy}:agents:world_builder:w1") == 1
    finally:
        await coordinator.aclose()
        async for key in coordination_redis.scan_iter(match=f"{legacy}:*"):
            await coordination_redis.delete(key)
