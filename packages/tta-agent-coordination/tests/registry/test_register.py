import pytest

from tta_agent_coordination.agents import AgentCapability, CapabilityType
from tta_agent_coordination.errors import (
    AgentAlreadyRegisteredError,
    ConfigurationError,
    RegistrationValidationError,
    StaleRegistrationError,
)
from tta_agent_coordination.interfaces import AgentRegistry
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry

from .conftest import FakeAgent

WB1 = AgentId("world_builder", "w1")
WB2 = AgentId("world_builder", "w2")
NG = AgentId("narrative_generator")

GEN = AgentCapability(name="story", version="2.1.0", type=CapabilityType.GENERATION)
ANA = AgentCapability(name="safety-check", type=CapabilityType.ANALYSIS, description="checks")


async def test_register_is_complete_when_it_returns(registry: RedisAgentRegistry):
    assert isinstance(registry, AgentRegistry)
    agent = FakeAgent(WB1, name="World builder", capabilities=[GEN, "mapping"])
    record = await registry.register(agent, metadata={"zone": "eu"})
    assert record.alive
    assert record.agent_id == WB1
    got = await registry.get(WB1)
    assert got is not None
    assert got.alive
    assert got.name == "World builder"
    assert got.status == "active"
    assert got.metadata == {"zone": "eu"}
    assert [c.name for c in got.capabilities] == ["story", "mapping"]
    assert got.capabilities[0] == GEN
    assert got.last_heartbeat is not None
    assert got.expires_at is not None
    assert got.expires_at > got.last_heartbeat
    # dict-style access, as the original returned dicts
    assert got["alive"] is True
    assert got["name"] == "World builder"
    assert got["type"] == "world_builder"
    assert "owner" not in got.model_dump()
    with pytest.raises(KeyError):
        got["owner"]


async def test_list_and_discover(registry: RedisAgentRegistry):
    await registry.register(FakeAgent(WB1, capabilities=[GEN]))
    await registry.register(FakeAgent(WB2, capabilities=[ANA]))
    await registry.register_id(NG, capabilities=[GEN, ANA], metadata={"k": 1})
    listed = await registry.list_registered()
    # a type-wide id registers its default instance
    assert [str(r.agent_id) for r in listed] == [str(NG.concrete()), str(WB1), str(WB2)]
    assert all(r.alive for r in listed)
    ng = await registry.get(NG)
    assert ng is not None
    assert ng.name == "narrative_generator"

    def ids(records):
        return {r.agent_id for r in records}

    assert ids(await registry.discover(type="world_builder")) == {WB1, WB2}
    assert ids(await registry.discover(capability="story")) == {WB1, NG.concrete()}
    assert ids(await registry.discover(type="world_builder", capability="story")) == {WB1}
    assert ids(await registry.discover()) == {WB1, WB2, NG.concrete()}
    assert ids(await registry.discover(capability="nothing")) == set()
    assert ids(await registry.discover(capability_type=CapabilityType.ANALYSIS)) == {
        WB2,
        NG.concrete(),
    }
    assert ids(await registry.discover(capability="story", capability_type="analysis")) == set()
    with pytest.raises(ConfigurationError):
        await registry.discover(capability="bad name{x}")
    with pytest.raises(ConfigurationError):
        await registry.discover(capability_type="telepathy")


async def test_deregister_removes_record_and_indexes(registry, coordination_redis):
    await registry.register(FakeAgent(WB1, capabilities=[GEN]))
    assert await registry.deregister(WB1) is True
    assert await registry.get(WB1) is None
    assert await registry.list_registered() == []
    assert await registry.discover(capability="story", alive_only=False) == []
    assert await registry.deregister(WB1) is False  # holds nothing any more
    keys = registry.keys
    assert (
        await coordination_redis.exists(
            keys.registry_liveness,
            keys.registry_capability("story"),
            keys.registry_type("world_builder"),
            keys.registry_agent(WB1),
        )
        == 0
    )


@pytest.mark.parametrize(
    "capability",
    [
        {"name": "bad name"},
        {"name": "x", "version": "one"},
        {"name": "x", "type": "telepathy"},
        {"name": "x", "colour": "red"},
        "{slot}",
        42,
    ],
)
async def test_bad_capabilities_are_refused_clearly(registry, capability):
    with pytest.raises(RegistrationValidationError, match="capability"):
        await registry.register_id(WB1, capabilities=[capability])
    assert await registry.get(WB1) is None


async def test_other_bad_input(registry):
    with pytest.raises(RegistrationValidationError, match="twice"):
        await registry.register_id(WB1, capabilities=[GEN, {"name": "story", "version": "9"}])
    with pytest.raises(RegistrationValidationError, match="status"):
        await registry.register_id(WB1, status="")
    with pytest.raises(RegistrationValidationError, match="JSON"):
        await registry.register_id(WB1, metadata={"x": object()})
    with pytest.raises(RegistrationValidationError, match="agent_id"):
        await registry.register(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="version"):  # a pydantic ValidationError
        AgentCapability(name="ok", version="1.x")
    assert await registry.list_registered() == []


def test_defaults_keep_the_original_contract(coordination_redis):
    registry = RedisAgentRegistry(coordination_redis)
    assert registry.heartbeat_ttl_s == 30.0
    assert registry.heartbeat_interval_s == 10.0
    assert registry.keys.prefix == "ao"


async def test_second_owner_is_refused_while_the_first_is_alive(make_registry):
    first, second = make_registry(), make_registry()
    await first.register(FakeAgent(WB1, name="first"))
    with pytest.raises(AgentAlreadyRegisteredError) as info:
        await second.register(FakeAgent(WB1, name="second"))
    assert info.value.expires_in_s is not None
    assert 0 < info.value.expires_in_s <= 30
    with pytest.raises(AgentAlreadyRegisteredError):
        await second.register_id(WB1)
    # the same registry registering again is a second owner too
    with pytest.raises(AgentAlreadyRegisteredError):
        await first.register_id(WB1)
    assert (await first.get(WB1)).name == "first"
    # the refused owner holds nothing
    with pytest.raises(StaleRegistrationError, match="not_registered"):
        await second.heartbeat(WB1)
    assert await second.deregister(WB1) is False
    await first.heartbeat(WB1)


async def test_takeover_makes_the_old_owner_stale(make_registry):
    first, second = make_registry(), make_registry()
    await first.register(FakeAgent(WB1, name="first"))
    await second.register(FakeAgent(WB1, name="second"), takeover=True)
    assert (await second.get(WB1)).name == "second"
    with pytest.raises(StaleRegistrationError, match="replaced") as info:
        await first.heartbeat(WB1)
    assert info.value.reason == "replaced"
    assert first.held() == []
    # the stale owner can neither change nor remove the new registration
    await first.register(FakeAgent(WB2))
    with pytest.raises(StaleRegistrationError):
        await first.set_status(WB1, "busy")
    assert (await second.get(WB1)).name == "second"
    kinds = [(e.kind.value, e.agent_id) for e in await second.events()]
    assert ("replaced", WB1) in kinds


async def test_deregister_by_a_stale_owner_is_refused(make_registry):
    first, second = make_registry(), make_registry()
    await first.register_id(WB1, name="first")
    await second.register_id(WB1, name="second", takeover=True)
    with pytest.raises(StaleRegistrationError, match="replaced"):
        await first.deregister(WB1)
    record = await second.get(WB1)
    assert record is not None
    assert record.alive
    assert record.name == "second"


async def test_expired_holder_is_taken_over_without_takeover(make_registry):
    first = make_registry(heartbeat_ttl_s=0.3, state_retention_s=5)
    second = make_registry(heartbeat_ttl_s=5)
    await first.register_id(WB1, name="first", capabilities=["old-skill"])
    with pytest.raises(AgentAlreadyRegisteredError):
        await second.register_id(WB1, name="second")
    import asyncio

    await asyncio.sleep(0.4)
    record = await second.register_id(WB1, name="second", capabilities=["new-skill"])
    assert record.alive
    with pytest.raises(StaleRegistrationError):
        await first.heartbeat(WB1)
    # the old holder's expiry was reported once, and its index entries are gone
    events = await second.events()
    assert [e.kind.value for e in events] == ["registered", "expired", "registered"]
    assert events[2].data["replaced"] == "expired"
    assert await second.discover(capability="old-skill", alive_only=False) == []
    assert [r.agent_id for r in await second.discover(capability="new-skill")] == [WB1]
    assert await second.reap_expired() == []


async def test_evict_removes_whoever_owns_it(make_registry):
    first, admin = make_registry(), make_registry()
    await first.register_id(WB1)
    assert await admin.evict(WB1) is True
    assert await admin.evict(WB1) is False
    assert await admin.get(WB1) is None
    with pytest.raises(StaleRegistrationError, match="deregistered"):
        await first.heartbeat(WB1)
