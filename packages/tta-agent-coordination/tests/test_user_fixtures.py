"""The fixtures a host application gets from tta_agent_coordination.testing.pytest_plugin."""

from __future__ import annotations

import asyncio

import pytest

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    AgentWorker,
    MessageType,
    RedisAgentRegistry,
    RedisMessageCoordinator,
)
from tta_agent_coordination.runtime.worker import WorkerState
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail

SENDER = AgentId("app", "tests")


async def test_coordinator_fixture_sends_and_receives(coordination_coordinator, key_prefix) -> None:
    assert isinstance(coordination_coordinator, RedisMessageCoordinator)
    agent = AgentId("fixture_agent", "a1")
    msg = AgentMessage(
        sender=SENDER, recipient=agent, message_type=MessageType.REQUEST, payload={"x": 1}
    )
    assert (await coordination_coordinator.send_message(SENDER, agent, msg)).delivered
    got = await coordination_coordinator.receive(agent)
    assert got is not None
    assert got.message.payload == {"x": 1}
    assert await coordination_coordinator.ack(agent, got.token)


async def test_registry_fixture_shares_redis_and_prefix(
    coordination_registry, coordination_redis, key_prefix
) -> None:
    assert isinstance(coordination_registry, RedisAgentRegistry)
    await coordination_registry.register_id(AgentId("fixture_agent", "r1"))
    records = await coordination_registry.list_registered()
    assert [(str(r.agent_id), r.alive) for r in records] == [("fixture_agent:r1", True)]
    keys = [k async for k in coordination_redis.scan_iter(match="*fixture_agent*")]
    assert keys
    assert all(k.decode().startswith(f"{key_prefix}:") for k in keys)


async def test_worker_factory_runs_handlers(
    coordination_worker_factory, coordination_coordinator, coordination_registry
) -> None:
    done = asyncio.Event()
    seen: list[int] = []
    worker = coordination_worker_factory("fixture_worker:w1")
    assert isinstance(worker, AgentWorker)

    @worker.on_request()
    async def handle(ctx) -> dict[str, int]:
        seen.append(ctx.payload["n"])
        if len(seen) == 3:
            done.set()
        return {"double": ctx.payload["n"] * 2}

    agent = AgentId("fixture_worker", "w1")
    async with worker:
        assert [str(r.agent_id) for r in await coordination_registry.list_registered()] == [
            "fixture_worker:w1"
        ]
        for n in range(3):
            msg = AgentMessage(
                sender=SENDER, recipient=agent, message_type=MessageType.REQUEST, payload={"n": n}
            )
            assert (await coordination_coordinator.send_message(SENDER, agent, msg)).delivered
        await asyncio.wait_for(done.wait(), 30)
    assert sorted(seen) == [0, 1, 2]
    assert worker.stats.succeeded == 3
    assert await coordination_registry.list_registered() == []


async def test_worker_factory_stops_workers_left_running(coordination_worker_factory) -> None:
    worker = coordination_worker_factory(AgentId("fixture_worker", "left"), registry=None)

    @worker.on_event()
    async def handle(ctx) -> None:
        return None

    await worker.start()
    assert worker.state is WorkerState.RUNNING
    # Not stopped here: the fixture's teardown stops it (a leaked task would fail the run).


@pytest.mark.parametrize("flag", ["", "0", "no"])
def test_a_missing_server_skips_the_test_unless_it_is_required(
    monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    monkeypatch.setenv("TTA_COORD_REQUIRE_REAL_REDIS", flag)
    with pytest.raises(pytest.skip.Exception, match=r"^Redis at x is down$"):
        skip_or_fail("Redis at x is down")


@pytest.mark.parametrize("flag", ["1", "true", "YES"])
def test_a_missing_server_fails_the_test_when_it_is_required(
    monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    monkeypatch.setenv("TTA_COORD_REQUIRE_REAL_REDIS", flag)
    with pytest.raises(pytest.fail.Exception, match=r"Redis at x is down .*must run"):
        skip_or_fail("Redis at x is down")
