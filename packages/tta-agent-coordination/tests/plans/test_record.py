"""Runs recorded through a RunRecorder, and restored into Redis after it lost them.

The recorder here is an in-memory implementation of the protocol (the Postgres one is
tested in the postgres package, against a real server); the runtime, drivers, agents and
Redis are real (FakeRedis and the real server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from tta_agent_coordination import AgentWorker, RedisMessageCoordinator
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.plans import (
    PlanRuntime,
    RunChange,
    RunRecorder,
    RunState,
    RunStatus,
    RuntimeFlags,
    Task,
    run_scope,
)
from tta_agent_coordination.plans.record import RunRecording
from tta_agent_coordination.store import StoreUnavailableError
from tta_agent_coordination.testing.backends import delete_prefix

from .conftest import CHECKER, WRITER, Agents, RulePlanner, eventually

TASK = Task(agent=WRITER, payload={"text": "hi"}, timeout_s=5)


class MemoryRecorder:
    """A RunRecorder in memory: newest snapshot per run, each event once."""

    def __init__(self) -> None:
        self.snapshots: dict[tuple[str, str], RunState] = {}
        self.events: dict[tuple[str, str, int, int], tuple[str, dict[str, Any]]] = {}
        self.calls = 0
        self.fail_next = 0
        self.fail_if: Callable[[RunChange], bool] = lambda _c: False
        self.fail_times = 0
        self.failed = 0

    async def record_runs(self, changes: Sequence[RunChange]) -> None:
        self.calls += 1
        if self.fail_next:
            self.fail_next -= 1
            raise StoreUnavailableError("recorder down")
        if self.failed < self.fail_times and any(self.fail_if(c) for c in changes):
            self.failed += 1
            raise StoreUnavailableError("recorder down")
        for change in changes:
            key = (change.scope, change.state.run_id)
            old = self.snapshots.get(key)
            if old is None or change.state.version > old.version:
                self.snapshots[key] = change.state
            for i, event in enumerate(change.events):
                self.events.setdefault((*key, change.state.version, i), event)

    async def unfinished_runs(self, scope: str) -> list[RunState]:
        live = [s for (sc, _), s in self.snapshots.items() if sc == scope]
        return sorted(
            (s for s in live if not s.status.terminal), key=lambda s: (s.created_ms, s.run_id)
        )

    def kinds(self, run_id: str) -> list[str]:
        return [e[0] for k, e in sorted(self.events.items()) if k[1] == run_id]


def flags(**overrides: Any) -> RuntimeFlags:
    values: dict[str, Any] = {"enhanced": True, "run_timeout_s": 30.0, "planner_timeout_s": 2.0}
    values.update(overrides)
    return RuntimeFlags(**values)


def test_the_memory_recorder_fits_the_protocol():
    assert isinstance(MemoryRecorder(), RunRecorder)


async def test_every_change_and_the_result_are_recorded(agents, make_runtime, coordinator):
    await agents.start(WRITER, "w1")
    await agents.start(CHECKER, "c1")
    recorder = MemoryRecorder()
    runtime, _ = await make_runtime(flags=flags(), store=recorder)
    result = await runtime.execute(TASK, run_id="rec-1", timeout=20)
    assert result.status is RunStatus.COMPLETED
    scope = run_scope(coordinator.keys.prefix, "default")
    final = recorder.snapshots[(scope, "rec-1")]
    redis_state = await runtime.store.require("rec-1")
    assert final.version == redis_state.version
    assert final.to_result() == result
    kinds = recorder.kinds("rec-1")
    assert kinds[0] == "created"
    assert kinds[-1] == "completed"
    assert kinds.count("step_succeeded") == 2
    assert await recorder.unfinished_runs(scope) == []


async def test_a_failing_write_behind_is_logged_and_the_run_goes_on(
    agents, make_runtime, coordinator
):
    await agents.start(WRITER, "w1")
    await agents.start(CHECKER, "c1")
    recorder = MemoryRecorder()
    recorder.fail_next = 1  # the creation's record fails
    runtime, _ = await make_runtime(flags=flags(), store=recorder)
    result = await runtime.execute(TASK, run_id="rec-2", timeout=20)
    assert result.status is RunStatus.COMPLETED
    scope = run_scope(coordinator.keys.prefix, "default")
    # The creation's events are missing; the snapshot caught up all the same.
    assert "created" not in recorder.kinds("rec-2")
    assert recorder.snapshots[(scope, "rec-2")].status is RunStatus.COMPLETED


async def test_a_failing_write_through_raises_and_a_retry_records():
    recorder = MemoryRecorder()
    recording = RunRecording(recorder, "p/default")
    state = RunState.model_validate(
        {
            "run_id": "r",
            "task": TASK.model_dump(),
            "mode": "single_shot",
            "policy": {},
            "status": "running",
            "version": 3,
        }
    )
    recorder.fail_next = 1
    with pytest.raises(StoreUnavailableError):
        await recording.ensure(state)
    assert recorder.snapshots == {}
    await recording.ensure(state)
    assert recorder.snapshots[("p/default", "r")].version == 3
    calls = recorder.calls
    await recording.ensure(state)  # already recorded: no write
    assert recorder.calls == calls
    # A failed note forgets the run, so the next write-through writes again.
    recorder.fail_next = 1
    await recording.note(state.model_copy(update={"version": 4}), [("x", {})])
    await recording.ensure(state.model_copy(update={"version": 4}))
    assert recorder.snapshots[("p/default", "r")].version == 4


async def test_restore_needs_a_store(make_runtime):
    runtime, _ = await make_runtime(drive=False, flags=flags())
    with pytest.raises(ConfigurationError, match="store"):
        await runtime.restore()


async def wait_recorded(recorder: MemoryRecorder, runtime: PlanRuntime, run_id: str) -> None:
    """Until the recorder holds the version Redis holds (write-behind is asynchronous)."""
    scope = run_scope(runtime.store.keys.prefix, "default")

    async def caught_up() -> bool:
        state = await runtime.store.require(run_id)
        snap = recorder.snapshots.get((scope, run_id))
        return snap is not None and snap.version == state.version

    await eventually(caught_up)


async def test_a_run_restored_after_redis_lost_it_completes_without_rerunning_a_step(
    agents, make_runtime, coordinator, coordination_redis, key_prefix
):
    await agents.start(WRITER, "w1")  # no checker yet: the run waits on its second step
    recorder = MemoryRecorder()
    runtime, driver = await make_runtime(flags=flags(), store=recorder)
    await runtime.start(TASK, run_id="rec-3")

    async def waiting_on_check() -> bool:
        state = await runtime.store.require("rec-3")
        return state.status is RunStatus.RUNNING and state.cursor == 1 and state.sent

    await eventually(waiting_on_check)
    await wait_recorded(recorder, runtime, "rec-3")
    await driver.stop(grace_period=0)
    await agents.stop()

    await delete_prefix(coordination_redis, key_prefix)  # Redis lost everything of ours
    assert await runtime.store.load("rec-3") is None

    assert await runtime.restore() == 1
    assert await runtime.restore() == 0  # twice is harmless
    restored = await runtime.store.require("rec-3")
    assert restored.status is RunStatus.RUNNING
    scope = run_scope(key_prefix, "default")
    assert restored.version == recorder.snapshots[(scope, "rec-3")].version

    agents.workers.clear()
    await agents.start(WRITER, "w2")
    await agents.start(CHECKER, "c1")
    worker = runtime.worker(
        poll_interval=0.1, visibility_timeout=2.0, grace_period=0.5, maintenance_interval=0.2
    )
    await worker.start()
    try:
        await wait_recorded_terminal(recorder, key_prefix, "rec-3")
    finally:
        await worker.stop(grace_period=0)
    result = await runtime.result("rec-3")
    assert result.status is RunStatus.COMPLETED
    assert [(r.step_id, r.attempt, r.result.ok) for r in result.steps] == [
        ("draft", 1, True),
        ("check", 1, True),
    ]
    # draft ran once, before the loss; check once, after the restore.
    assert [name for name, _ in agents.calls] == ["draft", "check"]
    # A finished run is not restored.
    await delete_prefix(coordination_redis, key_prefix)
    assert await runtime.restore() == 0
    assert await runtime.store.load("rec-3") is None


async def wait_recorded_terminal(recorder: MemoryRecorder, prefix: str, run_id: str) -> None:
    async def done() -> bool:
        snap = recorder.snapshots.get((run_scope(prefix, "default"), run_id))
        return snap is not None and snap.status.terminal

    await eventually(done, timeout=20)


@pytest.fixture
async def retrying(coordination_redis, key_prefix) -> AsyncIterator[RedisMessageCoordinator]:
    """A coordinator whose drivers retry a failed message (as production drivers must)."""
    coord = RedisMessageCoordinator(
        coordination_redis,
        key_prefix=key_prefix,
        backoff_base=0.05,
        backoff_factor=1.0,
        backoff_max=0.05,
        retry_attempts=5,
    )
    yield coord
    await coord.aclose()


def before_send(change: RunChange) -> bool:
    """A running state not yet sent: its write-behind, then the write-through before the send."""
    state = change.state
    return state.status is RunStatus.RUNNING and not state.sent


def at_the_end(change: RunChange) -> bool:
    return change.state.status.terminal


@pytest.mark.parametrize(("fail_if", "times"), [(before_send, 3), (at_the_end, 3)])
async def test_a_failing_write_through_holds_the_driver_until_the_store_has_the_state(
    retrying, fail_if, times
):
    agents = Agents(retrying)
    await agents.start(WRITER, "w1")
    await agents.start(CHECKER, "c1")
    recorder = MemoryRecorder()
    recorder.fail_if = fail_if
    recorder.fail_times = times
    runtime = PlanRuntime(retrying, planner=RulePlanner(), flags=flags(), store=recorder)
    worker: AgentWorker = runtime.worker(
        poll_interval=0.1, visibility_timeout=2.0, grace_period=0.5, maintenance_interval=0.2
    )
    await worker.start()
    try:
        await runtime.start(TASK, run_id="wt-1")
        await wait_recorded_terminal(recorder, retrying.keys.prefix, "wt-1")
    finally:
        await worker.stop(grace_period=0)
        await agents.stop()
    assert recorder.failed == times
    result = await runtime.result("wt-1")
    assert result.status is RunStatus.COMPLETED
    # The failed writes held the driver back and were retried; no step ran twice.
    assert [name for name, _ in agents.calls] == ["draft", "check"]
    snap = recorder.snapshots[(run_scope(retrying.keys.prefix, "default"), "wt-1")]
    assert snap.to_result() == result


async def test_restore_leaves_runs_redis_holds_and_never_revives_a_finished_one(make_runtime):
    recorder = MemoryRecorder()
    runtime, _ = await make_runtime(drive=False, flags=flags(), store=recorder)
    await runtime.start(TASK, run_id="held")
    scope = run_scope(runtime.store.keys.prefix, "default")
    held = recorder.snapshots[(scope, "held")]
    # The store's snapshot differs from what Redis holds (Redis was not lost): untouched.
    recorder.snapshots[(scope, "held")] = held.model_copy(update={"version": 7})
    # A store that wrongly lists a finished run: it is not restored.
    ended = held.model_copy(update={"run_id": "ended", "status": RunStatus.COMPLETED})

    async def unfinished(_scope: str) -> list[RunState]:
        return [recorder.snapshots[(scope, "held")], ended]

    recorder.unfinished_runs = unfinished  # type: ignore[method-assign]
    assert await runtime.restore() == 0
    assert (await runtime.store.require("held")).version == held.version
    assert await runtime.store.load("ended") is None
