"""``seed_state``: a saved state stored for an agent's next registration (a migration)."""

import pytest

from tta_agent_coordination.errors import (
    AgentAlreadyRegisteredError,
    RegistrationValidationError,
)
from tta_agent_coordination.models import AgentId

from .conftest import FakeAgent

A = AgentId("world_builder", "w1")


async def test_a_seeded_state_is_imported_by_the_next_registration(make_registry):
    registry = make_registry()
    assert await registry.seed_state(A, {"turn": 3, "places": ["inn"]}) is True
    agent = FakeAgent(A)
    await registry.register(agent)
    assert agent.imported == [{"turn": 3, "places": ["inn"]}]


async def test_a_state_already_there_is_kept_unless_replaced(make_registry):
    registry = make_registry()
    assert await registry.seed_state(A, {"v": 1})
    assert await registry.seed_state(A, {"v": 2}) is False
    assert await registry.seed_state(A, {"v": 3}, replace=True) is True
    agent = FakeAgent(A)
    await registry.register(agent)
    assert agent.imported == [{"v": 3}]


async def test_a_live_agent_is_refused(make_registry):
    registry = make_registry()
    await registry.register(FakeAgent(A, state={"v": 1}))
    with pytest.raises(AgentAlreadyRegisteredError):
        await registry.seed_state(A, {"v": 2}, replace=True)


async def test_a_state_that_is_not_json_or_too_large_is_refused(make_registry):
    registry = make_registry(max_state_bytes=64)
    with pytest.raises(RegistrationValidationError, match="not JSON-serialisable"):
        await registry.seed_state(A, {"v": object()})
    with pytest.raises(RegistrationValidationError, match="over the limit"):
        await registry.seed_state(A, {"v": "x" * 100})


async def test_a_seeded_state_expires_with_the_retention(make_registry, coordination_redis):
    registry = make_registry(state_retention_s=60)
    await registry.seed_state(A, {"v": 1})
    ttl = await coordination_redis.pttl(registry.keys.registry_state(A))
    assert 0 < ttl <= 60_000
