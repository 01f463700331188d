"""Behaviours 23-29 of tta-original.md §4 (the registry), through ``tta_agents.compat``.

The original checked its keys (``P:agents:{type}:{inst}``, ``P:agents:index``) after a
50 ms sleep, because ``register`` ran in the background. Here ``register`` is awaited
(complete when it returns) and the checks read the registry's records instead of keys.
"""

from __future__ import annotations

import asyncio
import gc

import pytest

from tta_agents.compat import (
    AgentType,
    CompatWarning,
    ConfigurationError,
    RedisAgentRegistry,
    create_agent_id,
)


class StateAgent:
    """A minimal agent with the contract the original registry required."""

    def __init__(self, instance: str, name: str, state: dict | None = None) -> None:
        self.agent_id = create_agent_id(AgentType.IPA, instance)
        self.name = name
        self.state = dict(state or {})
        self.imported: list[dict] = []

    def status_snapshot(self) -> dict:
        return {"state": "running"}

    async def export_state(self) -> dict:
        return dict(self.state)

    async def import_state(self, state: dict) -> None:
        self.imported.append(state)
        self.state.update(state)


@pytest.fixture
async def make_registry(coordination_redis, key_prefix):
    made: list[RedisAgentRegistry] = []

    def make(**kwargs) -> RedisAgentRegistry:
        registry = RedisAgentRegistry(coordination_redis, key_prefix, **kwargs)
        made.append(registry)
        return registry

    yield make
    for registry in made:
        await registry.aclose()


async def test_b23_register_writes_a_record_with_its_name(make_registry):
    registry = make_registry(heartbeat_ttl_s=5)
    agent = StateAgent("x", "ipa-x")
    record = await registry.register(agent)
    assert record.name == "ipa-x"
    stored = await registry.get(agent.agent_id)
    assert stored is not None
    assert stored["name"] == "ipa-x"


async def test_b24_heartbeating_agent_is_listed_alive(make_registry):
    registry = make_registry(heartbeat_ttl_s=1.0, heartbeat_interval_s=0.2)
    agent = StateAgent("alive", "ipa-alive")
    await registry.register(agent)
    registry.start_heartbeats()
    entries = await registry.list_registered()
    assert any(e["name"] == "ipa-alive" and e["alive"] for e in entries)


async def test_b25_after_heartbeats_stop_the_agent_is_not_alive(make_registry, eventually):
    registry = make_registry(heartbeat_ttl_s=1.0, heartbeat_interval_s=0.2)
    agent = StateAgent("fading", "ipa-fading")
    await registry.register(agent)
    registry.start_heartbeats()
    await registry.stop_heartbeats()
    await asyncio.sleep(1.2)  # longer than the TTL: a lower bound

    async def not_alive() -> bool:
        entries = await registry.list_registered()
        return not any(e["name"] == "ipa-fading" and e["alive"] for e in entries)

    await eventually(not_alive)


async def test_b26_snapshot_async_has_local_and_redis_index(make_registry):
    registry = make_registry(heartbeat_ttl_s=5)
    agent = StateAgent("snap", "ipa-snap")
    await registry.register(agent)
    snapshot = await registry.snapshot_async()
    assert set(snapshot) == {"local", "redis_index"}
    assert snapshot["local"] == {"ipa-snap": {"state": "running"}}
    assert [e["name"] for e in snapshot["redis_index"]] == ["ipa-snap"]
    await registry.deregister(agent.agent_id)
    assert (await registry.snapshot_async()) == {"local": {}, "redis_index": []}


async def test_b27_heartbeat_renews_status_and_last_heartbeat(make_registry, eventually):
    registry = make_registry(heartbeat_ttl_s=0.8, heartbeat_interval_s=0.2)
    agent = StateAgent("beat", "ipa-beat")
    await registry.register(agent)
    registry.start_heartbeats()
    registry.start_heartbeats()  # twice is harmless
    first = await registry.get(agent.agent_id)
    assert first is not None
    assert first.status
    assert first.last_heartbeat is not None

    async def renewed() -> bool:
        later = await registry.get(agent.agent_id)
        return later is not None and later.last_heartbeat > first.last_heartbeat

    await eventually(renewed)
    assert registry.heartbeats_running


async def test_b28_deregister_removes_the_record_and_the_index_entry(make_registry):
    registry = make_registry(heartbeat_ttl_s=5)
    agent = StateAgent("gone", "ipa-gone")
    await registry.register(agent)
    assert await registry.deregister(agent.agent_id) is True
    assert await registry.get(agent.agent_id) is None
    assert await registry.list_registered() == []


async def test_b29_state_is_restored_into_a_new_agent_object(make_registry):
    registry = make_registry(heartbeat_ttl_s=5)
    old = StateAgent("stateful", "ipa-stateful", {"flag": 41})
    await registry.register(old)
    await registry.deregister(old)  # saves export_state()
    new = StateAgent("stateful", "ipa-stateful")
    await registry.register(new)
    assert new.imported == [{"flag": 41}]
    assert new.state["flag"] == 41


async def test_register_not_awaited_warns_and_does_nothing(make_registry):
    registry = make_registry(heartbeat_ttl_s=5)
    agent = StateAgent("lazy", "ipa-lazy")

    def drop_unawaited() -> None:
        registry.register(agent)  # the coroutine is dropped at once
        gc.collect()

    with pytest.warns(CompatWarning, match=r"registry\.register\(agent\) was never awaited"):
        drop_unawaited()
    assert await registry.get(agent.agent_id) is None


async def test_event_publisher_is_refused_with_a_pointer(coordination_redis, key_prefix):
    with pytest.raises(ConfigurationError, match="event_publisher"):
        RedisAgentRegistry(coordination_redis, key_prefix, event_publisher=object())


async def test_compat_registry_defaults_are_the_originals(make_registry):
    registry = make_registry()
    assert registry.heartbeat_ttl_s == 30.0
    assert registry.heartbeat_interval_s == pytest.approx(10.0)


async def test_discover_by_agent_type_finds_live_agents(make_registry):
    registry = make_registry(heartbeat_ttl_s=5)
    await registry.register(StateAgent("d1", "ipa-d1"))
    found = await registry.discover(AgentType.IPA)
    assert [r.name for r in found] == ["ipa-d1"]
    assert await registry.discover(AgentType.NGA) == []
