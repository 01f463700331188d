import asyncio

import pytest

from tta_agent_coordination.agents import RegistryEventKind
from tta_agent_coordination.errors import RegistrationExpiredError, StaleRegistrationError
from tta_agent_coordination.models import AgentId

from .conftest import FakeAgent, GateGuard

WB1 = AgentId("world_builder", "w1")


async def test_expiry_turns_alive_false_before_and_after_the_reaper(make_registry):
    registry = make_registry(heartbeat_ttl_s=0.3, state_retention_s=5)
    await registry.register_id(WB1, capabilities=["story"])
    assert (await registry.get(WB1)).alive
    await asyncio.sleep(0.4)
    # no reaper has run: the entry is still listed, but not alive
    listed = await registry.list_registered()
    assert [(r.agent_id, r.alive) for r in listed] == [(WB1, False)]
    assert (await registry.get(WB1)).alive is False
    assert await registry.discover(capability="story") == []
    assert [r.agent_id for r in await registry.discover(capability="story", alive_only=False)] == [
        WB1
    ]

    assert await registry.reap_expired() == [WB1]
    assert await registry.list_registered() == []
    kept = await registry.get(WB1)
    assert kept is not None
    assert kept.alive is False
    assert kept.last_heartbeat is not None
    assert await registry.discover(capability="story", alive_only=False) == []
    expired = [e for e in await registry.events() if e.kind is RegistryEventKind.EXPIRED]
    assert len(expired) == 1
    assert expired[0].agent_id == WB1
    assert expired[0].data["last_heartbeat"] is not None
    with pytest.raises(RegistrationExpiredError):
        await registry.heartbeat(WB1)


async def test_concurrent_reapers_emit_one_event_per_expiry(make_registry):
    agents = [AgentId("worker", f"i{n}") for n in range(40)]
    owner = make_registry(heartbeat_ttl_s=0.3, state_retention_s=5)
    for agent in agents:
        await owner.register_id(agent)
    await asyncio.sleep(0.4)
    reapers = [make_registry(reap_batch=7) for _ in range(4)]
    results = await asyncio.gather(*(r.reap_expired() for r in reapers for _ in range(3)))
    reaped = [a for result in results for a in result]
    assert sorted(reaped, key=str) == sorted(agents, key=str)  # each exactly once
    expired = [e for e in await owner.events(limit=1000) if e.kind is RegistryEventKind.EXPIRED]
    assert sorted((e.agent_id for e in expired), key=str) == sorted(agents, key=str)


async def test_a_late_heartbeat_cannot_resurrect_a_deregistered_agent(make_registry):
    guard = GateGuard("registry_heartbeat")
    registry = make_registry(guard=guard)
    await registry.register_id(WB1)
    late = asyncio.create_task(registry.heartbeat(WB1))  # token captured, held at the gate
    await guard.waiting.wait()
    assert await registry.deregister(WB1) is True
    guard.gate.set()
    with pytest.raises(StaleRegistrationError, match="deregistered"):
        await late
    assert await registry.get(WB1) is None
    assert await registry.list_registered() == []


async def test_heartbeat_of_a_registration_replaced_after_deregister_is_refused(make_registry):
    guard = GateGuard("registry_heartbeat")
    old, new = make_registry(guard=guard), make_registry()
    await old.register_id(WB1, name="old")
    late = asyncio.create_task(old.heartbeat(WB1))
    await guard.waiting.wait()
    await old.deregister(WB1)
    await new.register_id(WB1, name="new")
    guard.gate.set()
    with pytest.raises(StaleRegistrationError, match="replaced"):
        await late
    assert (await new.get(WB1)).name == "new"


async def test_interleaved_register_heartbeat_deregister_never_resurrects(make_registry):
    registry = make_registry(heartbeat_ttl_s=5, heartbeat_interval_s=0.01)
    other = make_registry()
    agents = [AgentId("mixer", f"m{n}") for n in range(25)]
    registry.start_heartbeats()

    async def churn(agent: AgentId) -> None:
        for _ in range(4):
            await registry.register(FakeAgent(agent))
            beats = [asyncio.create_task(registry.heartbeat(agent)) for _ in range(3)]
            await asyncio.sleep(0)
            await asyncio.gather(registry.deregister(agent), *beats, return_exceptions=True)

    await asyncio.gather(*(churn(a) for a in agents))
    await asyncio.sleep(0.1)  # the heartbeat task keeps running: nothing may come back
    assert await other.list_registered() == []
    for agent in agents:
        assert await other.get(agent) is None
    # register and deregister of one id, started together, run in call order
    await asyncio.gather(registry.register(FakeAgent(agents[0])), registry.deregister(agents[0]))
    await asyncio.sleep(0.05)
    assert await other.get(agents[0]) is None


async def _index_keys(redis, registry) -> list:
    pattern = registry.keys.registry_tag.replace("{", "\\{").replace("}", "\\}") + ":*"
    keys = [
        k.decode() if isinstance(k, bytes) else k
        async for k in redis.scan_iter(match=pattern, count=1000)
    ]
    return [k for k in keys if ":cap:" in k or ":type:" in k or k.endswith(":alive")]


async def test_index_does_not_grow_with_churn(make_registry, coordination_redis):
    steady = make_registry()
    await steady.register_id(AgentId("steady", "s1"), capabilities=["stay"])
    registry = make_registry(heartbeat_ttl_s=0.4, state_retention_s=0.4)
    n = 2000
    agents = [AgentId(f"kind{i % 7}", f"i{i}") for i in range(n)]
    sem = asyncio.Semaphore(100)

    async def cycle(agent: AgentId, expire: bool) -> None:
        async with sem:
            await registry.register_id(agent, capabilities=[f"cap{len(str(agent)) % 5}", "common"])
            if not expire:
                await registry.deregister(agent)

    # half deregister, half are left to expire
    await asyncio.gather(*(cycle(a, i % 2 == 1) for i, a in enumerate(agents)))
    await asyncio.sleep(0.5)
    reaped = await registry.reap_expired()
    assert len(reaped) == n // 2
    keys = registry.keys
    # only the one live agent is left in the liveness set and the indexes
    assert await coordination_redis.zcard(keys.registry_liveness) == 1
    assert await coordination_redis.scard(keys.registry_capability("stay")) == 1
    assert await coordination_redis.scard(keys.registry_type("steady")) == 1
    assert len(await _index_keys(coordination_redis, registry)) == 3
    assert [r.agent_id for r in await registry.list_registered()] == [AgentId("steady", "s1")]
    # and the retained records of the expired ones go after state_retention_s
    await asyncio.sleep(0.5)
    pattern = keys.registry_tag.replace("{", "\\{").replace("}", "\\}") + ":agent:*"
    left = [k async for k in coordination_redis.scan_iter(match=pattern, count=1000)]
    assert len(left) == 1
