import asyncio
import time

import pytest

from tta_agent_coordination.agents import RegistryEventKind
from tta_agent_coordination.models import AgentId

from .conftest import FakeAgent, FlakyGuard

A = AgentId("worker", "a")
B = AgentId("worker", "b")


async def test_start_and_stop_are_idempotent(make_registry):
    registry = make_registry(heartbeat_ttl_s=0.5)
    await registry.stop_heartbeats()
    registry.start_heartbeats()
    registry.start_heartbeats()
    assert registry.heartbeats_running
    await registry.stop_heartbeats()
    await registry.stop_heartbeats()
    assert not registry.heartbeats_running


async def test_heartbeats_keep_registrations_alive(make_registry):
    registry = make_registry(heartbeat_ttl_s=0.3)
    await registry.register(FakeAgent(A))
    await registry.register_id(B)
    registry.start_heartbeats()
    await asyncio.sleep(0.8)
    first = await registry.get(A)
    assert first.alive
    assert (await registry.get(B)).alive
    assert await registry.reap_expired() == []
    await registry.stop_heartbeats()
    await asyncio.sleep(0.4)
    assert not (await registry.get(A)).alive


async def test_heartbeat_task_survives_redis_errors(make_registry):
    guard = FlakyGuard("registry_heartbeat", failures=4)
    registry = make_registry(heartbeat_ttl_s=0.6, heartbeat_interval_s=0.1, guard=guard)
    await registry.register_id(A)
    registry.start_heartbeats()
    await asyncio.sleep(1.0)
    assert registry.heartbeats_running
    assert guard.failures == 0
    assert guard.calls > 4
    record = await registry.get(A)
    assert record.alive
    assert await registry.reap_expired() == []


async def test_a_slow_hook_does_not_delay_other_agents(make_registry):
    registry = make_registry(heartbeat_ttl_s=0.6, heartbeat_interval_s=0.2)
    slow = FakeAgent(A, status="slow-status")
    slow.snapshot_delay = 5.0  # far beyond the TTL
    fast = FakeAgent(B, status="fast-status")
    await registry.register(slow)
    await registry.register(fast)
    registry.start_heartbeats()
    started = time.monotonic()
    await asyncio.sleep(1.5)
    records = {r.agent_id: r for r in await registry.list_registered()}
    assert records[A].alive
    assert records[B].alive
    assert records[B].status == "fast-status"
    assert records[A].status == "active"  # its hook never answered in time
    assert await registry.reap_expired() == []
    await registry.stop_heartbeats()
    assert time.monotonic() - started < 3


async def test_status_snapshot_mapping_and_events_only_on_change(make_registry):
    registry = make_registry(heartbeat_ttl_s=0.6, heartbeat_interval_s=0.05)
    agent = FakeAgent(A, status={"status": "busy", "load": 3})
    await registry.register(agent)
    registry.start_heartbeats()
    await asyncio.sleep(0.3)
    record = await registry.get(A)
    assert record.status == "busy"
    assert record.snapshot == {"status": "busy", "load": 3}
    agent.status = "idle"
    await asyncio.sleep(0.3)
    await registry.stop_heartbeats()
    changes = [
        (e.data["old"], e.data["new"])
        for e in await registry.events()
        if e.kind is RegistryEventKind.STATUS_CHANGED
    ]
    assert changes == [("active", "busy"), ("busy", "idle")]


async def test_set_status_emits_only_real_changes(registry):
    await registry.register_id(A)
    assert await registry.set_status(A, "busy") is True
    assert await registry.set_status(A, "busy") is False
    assert await registry.set_status(A, "active") is True
    assert (await registry.get(A)).status == "active"
    kinds = [e.kind for e in await registry.events()]
    assert kinds.count(RegistryEventKind.STATUS_CHANGED) == 2


async def test_heartbeat_task_registers_again_after_a_stall(make_registry):
    registry = make_registry(heartbeat_ttl_s=0.3, state_retention_s=5)
    await registry.register_id(A, capabilities=["story"])
    await asyncio.sleep(0.4)  # stalled past the TTL
    registry.start_heartbeats()
    await asyncio.sleep(0.3)
    record = await registry.get(A)
    assert record is not None
    assert record.alive
    assert [c.name for c in record.capabilities] == ["story"]
    kinds = [e.kind.value for e in await registry.events()]
    assert kinds == ["registered", "expired", "registered"]


async def test_heartbeat_task_drops_a_registration_taken_over(make_registry):
    first = make_registry(heartbeat_ttl_s=0.6, heartbeat_interval_s=0.05)
    second = make_registry()
    await first.register_id(A, name="first")
    first.start_heartbeats()
    await second.register_id(A, name="second", takeover=True)
    await asyncio.sleep(0.2)
    assert first.held() == []
    assert (await second.get(A)).name == "second"


@pytest.mark.parametrize("deregister", [True, False])
async def test_aclose(make_registry, deregister):
    registry = make_registry(heartbeat_ttl_s=1)
    observer = make_registry()
    await registry.register_id(A)
    registry.start_heartbeats()
    await registry.aclose(deregister=deregister)
    assert not registry.heartbeats_running
    assert registry.held() == ([] if deregister else [A])
    record = await observer.get(A)
    if deregister:
        assert record is None
    else:
        assert record is not None
        assert record.alive  # left to expire on its own
