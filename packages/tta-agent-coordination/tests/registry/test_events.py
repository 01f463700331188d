import asyncio

import pytest

from tta_agent_coordination.agents import RegistryEventKind
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId

A = AgentId("worker", "a")
B = AgentId("worker", "b")


async def test_events_since(registry):
    await registry.register_id(A)
    await registry.register_id(B)
    await registry.set_status(A, "busy")
    await registry.deregister(B)
    events = await registry.events()
    assert [(e.kind, e.agent_id) for e in events] == [
        (RegistryEventKind.REGISTERED, A),
        (RegistryEventKind.REGISTERED, B),
        (RegistryEventKind.STATUS_CHANGED, A),
        (RegistryEventKind.DEREGISTERED, B),
    ]
    assert events[0].data == {"name": "worker", "status": "active", "replaced": "none"}
    assert events[3].data == {"reason": "deregistered", "was_alive": True}
    assert events[0].at <= events[3].at
    later = await registry.events(since=events[1].id)
    assert [e.id for e in later] == [events[2].id, events[3].id]
    assert [e.id for e in await registry.events(limit=1)] == [events[0].id]
    assert await registry.events(since=events[3].id) == []
    with pytest.raises(ConfigurationError):
        await registry.events(since="not-an-id")
    with pytest.raises(ConfigurationError):
        await registry.events(limit=0)


async def test_follow_yields_new_events(make_registry):
    registry, other = make_registry(), make_registry()
    await registry.register_id(A)  # before following: not yielded
    seen: list = []

    async def consume():
        async for event in registry.follow(block_s=0.1):
            seen.append(event)
            if len(seen) == 3:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.15)
    await other.register_id(B)
    await other.set_status(B, "busy")
    await other.deregister(B)
    await asyncio.wait_for(task, 5)
    assert [(e.kind.value, e.agent_id) for e in seen] == [
        ("registered", B),
        ("status_changed", B),
        ("deregistered", B),
    ]
    # follow from an id replays what came after it
    replay = []
    async for event in registry.follow(since=seen[0].id, block_s=0.05):
        replay.append(event)
        if len(replay) == 2:
            break
    assert [e.id for e in replay] == [seen[1].id, seen[2].id]


async def test_events_stream_is_bounded(make_registry, coordination_redis):
    registry = make_registry(events_max_len=50)
    for n in range(300):
        await registry.set_status(A, f"s{n}") if n else await registry.register_id(A)
    length = await coordination_redis.xlen(registry.keys.registry_events)
    assert length < 300  # MAXLEN ~ trims in whole nodes: near the bound, never unbounded
    quiet = make_registry(enable_events=False)
    await quiet.register_id(B)
    assert await coordination_redis.xlen(registry.keys.registry_events) == length
