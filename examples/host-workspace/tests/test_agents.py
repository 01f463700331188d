"""The host's agent, tested on FakeRedis through the library's fixtures."""

# pyright: reportMissingImports=false
# (host_app is installed in the example's own environment, not in the library's workspace
# that type-checks this file.)

from __future__ import annotations

import tta_agent_coordination_postgres
from host_app import CALCULATOR, make_worker
from tta_agent_coordination import AgentId, RedisAgentRegistry, RedisMessageCoordinator, features


async def test_the_calculator_answers_a_request(
    coordination_coordinator: RedisMessageCoordinator,
    coordination_registry: RedisAgentRegistry,
) -> None:
    """A request sent through the coordinator gets the worker's reply."""
    worker = make_worker(coordination_coordinator, coordination_registry)
    async with worker:
        reply = await coordination_coordinator.request(
            AgentId("client"), CALCULATOR, {"a": 2, "b": 3}, timeout=5
        )
    assert reply.payload == {"sum": 5}


def test_the_postgres_extra_resolves_from_the_workspace() -> None:
    """``tta-agent-coordination[postgres]`` installed the adapter next to the core."""
    assert features()["postgres"].usable
    assert tta_agent_coordination_postgres.__version__
