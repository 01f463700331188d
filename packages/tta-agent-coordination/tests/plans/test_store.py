"""The run store: one hash slot per run, compare-and-set, expiry, listing."""

import pytest
from redis.crc import key_slot

from tta_agent_coordination import AgentId
from tta_agent_coordination.errors import ConfigurationError, CoordinatorUnavailableError
from tta_agent_coordination.plans import Policy, RunMode, RunNotFoundError, RunStatus, Task
from tta_agent_coordination.plans.admin import client_of
from tta_agent_coordination.plans.keys import PlanKeys
from tta_agent_coordination.plans.machine import Cancelled, advance, new_run
from tta_agent_coordination.plans.store import RunStore

from .conftest import RulePlanner

TASK = Task(agent=AgentId("solo"))


def test_a_runs_keys_share_one_cluster_slot_and_ids_are_checked():
    keys = PlanKeys("ao").run("order-7")
    assert key_slot(keys.state.encode()) == key_slot(keys.log.encode())
    assert "{_run:order-7}" in keys.state
    for bad in ("", "a:b", "a b", "{x}", "-lead"):
        with pytest.raises(ConfigurationError):
            PlanKeys("ao").run(bad)


async def test_compare_and_set_expiry_and_listing(coordinator, coordination_redis):
    store = RunStore(
        client_of(coordinator), coordinator.keys.prefix, events_max_len=50, retention_s=60
    )
    first = new_run("r1", TASK, RunMode.MULTI_STEP, Policy())
    assert await store.create(first.state, first.events, 1_000)
    assert not await store.create(first.state, first.events, 1_000)
    loaded = await store.require("r1")
    assert loaded.version == 1
    cancelled = advance(loaded, Cancelled("stop"))
    # A change computed from an older version is refused.
    stale = loaded.model_copy(update={"version": 0})
    assert not await store.apply(stale, cancelled.state, cancelled.events)
    assert await store.apply(loaded, cancelled.state, cancelled.events)
    ended = await store.require("r1")
    assert (ended.version, ended.status) == (2, RunStatus.CANCELLED)
    keys = store.keys.run("r1")
    assert 0 < await coordination_redis.pttl(keys.state) <= 60_000
    assert 0 < await coordination_redis.pttl(keys.log) <= 60_000
    assert [e.kind for e in await store.read_events("r1")] == ["created", "cancelled"]
    assert [s.run_id for s in await store.list_runs()] == ["r1"]
    await coordination_redis.delete(keys.state, keys.log)
    with pytest.raises(RunNotFoundError):
        await store.apply(ended, ended, [])
    assert await store.list_runs() == []  # the expired run left the index
    assert await coordination_redis.zcard(store.keys.index) == 0


async def test_a_state_that_never_stops_changing_is_reported(coordinator):
    from tta_agent_coordination.plans import PlanRuntime

    runtime = PlanRuntime(coordinator, planner=RulePlanner())
    run_id = await runtime.start(TASK)

    async def always_conflicts(before, after, events):
        return False

    runtime.store.apply = always_conflicts  # type: ignore[method-assign]
    with pytest.raises(CoordinatorUnavailableError, match="changed 100 times"):
        await runtime.cancel(run_id)
