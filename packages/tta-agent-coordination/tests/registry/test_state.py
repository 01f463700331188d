import asyncio

import pytest

from tta_agent_coordination.errors import AgentAlreadyRegisteredError
from tta_agent_coordination.models import AgentId

from .conftest import FakeAgent

A = AgentId("world_builder", "w1")


async def test_state_is_restored_across_registrations(make_registry):
    first = make_registry()
    agent = FakeAgent(A, state={"turn": 7, "places": ["inn", "forest"]})
    await first.register(agent)
    agent.state["turn"] = 8
    await first.deregister(A)  # exports the final state

    second = make_registry()
    seen_at_import: list = []
    replacement = FakeAgent(A)

    async def import_state(state):
        # the new registration's record must not exist yet while the state is imported
        seen_at_import.append(await second.get(A))
        replacement.state = dict(state)

    replacement.import_state = import_state  # type: ignore[method-assign]
    await second.register(replacement)
    assert replacement.state == {"turn": 8, "places": ["inn", "forest"]}
    assert seen_at_import == [None]


async def test_state_survives_expiry_longer_than_the_ttl(make_registry):
    registry = make_registry(
        heartbeat_ttl_s=0.2, heartbeat_interval_s=0.05, state_save_interval_s=0.05
    )
    agent = FakeAgent(A, state={"n": 1})
    await registry.register(agent)
    registry.start_heartbeats()
    await asyncio.sleep(0.2)
    agent.state["n"] = 2
    await asyncio.sleep(0.2)
    await registry.stop_heartbeats()  # the process "dies" without deregistering
    await asyncio.sleep(0.3)
    assert await registry.reap_expired() == [A]

    replacement = FakeAgent(A)
    await make_registry().register(replacement)
    assert replacement.imported == [{"n": 2}]


async def test_a_sync_importer_and_no_state(make_registry):
    registry = make_registry()
    imported: list = []

    class Plain:
        agent_id = A
        name = "plain"

        def import_state(self, state):
            imported.append(state)

    await registry.register(Plain())
    assert imported == []  # nothing retained yet
    await registry.deregister(A)
    await registry.register(Plain())
    assert imported == []  # Plain has no export_state: nothing was saved


async def test_no_import_when_the_id_is_held(make_registry):
    first, second = make_registry(), make_registry()
    await first.register(FakeAgent(A, state={"x": 1}))
    await first.heartbeat(A)
    other = FakeAgent(A)
    with pytest.raises(AgentAlreadyRegisteredError):
        await second.register(other)
    assert other.imported == []


async def test_failing_import_aborts_the_registration(registry):
    await registry.register(FakeAgent(A, state={"x": 1}))
    await registry.deregister(A)

    class Broken(FakeAgent):
        async def import_state(self, state):
            raise RuntimeError("cannot restore")

    with pytest.raises(RuntimeError, match="cannot restore"):
        await registry.register(Broken(A))
    assert await registry.get(A) is None


async def test_unserialisable_or_huge_state_is_not_saved(make_registry):
    registry = make_registry(max_state_bytes=100)
    agent = FakeAgent(A, state={"blob": "x" * 500})
    await registry.register(agent)
    assert await registry.deregister(A) is True  # deregistered anyway
    fresh = FakeAgent(A)
    await registry.register(fresh)
    assert fresh.imported == []


async def test_state_is_json(registry, coordination_redis):
    await registry.register(FakeAgent(A, state={"a": [1, 2]}))
    await registry.deregister(A)
    raw = await coordination_redis.get(registry.keys.registry_state(A))
    assert raw == b'{"a":[1,2]}'  # the test clients do not decode responses
    ttl_ms = await coordination_redis.pttl(registry.keys.registry_state(A))
    assert 23 * 3600 * 1000 < ttl_ms <= 24 * 3600 * 1000
