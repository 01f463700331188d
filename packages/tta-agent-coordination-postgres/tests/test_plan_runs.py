"""Plan runs recorded in Postgres and restored after a Redis loss (real Redis, real Postgres)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tta_agent_coordination import AgentId, AgentWorker, RedisMessageCoordinator
from tta_agent_coordination.plans import (
    Assessment,
    Plan,
    PlanRuntime,
    RunChange,
    RunContext,
    RunRecorder,
    RunResult,
    RunState,
    RunStatus,
    RuntimeFlags,
    Step,
    Task,
    run_scope,
)
from tta_agent_coordination.store import StorePayloadError
from tta_agent_coordination.testing.backends import delete_prefix
from tta_agent_coordination_postgres import (
    PostgresMessageStore,
    PostgresPlanRunStore,
    StoreConfigurationError,
    StoreNotMigratedError,
    migrations,
)
from tta_agent_coordination_postgres import store as store_module

WRITER = AgentId("writer")
CHECKER = AgentId("checker")
TASK = Task(agent=WRITER, payload={"text": "hi"}, timeout_s=5)
FLAGS = RuntimeFlags(enhanced=True, run_timeout_s=60.0, planner_timeout_s=2.0)


class TwoSteps:
    """Plans every task as draft (writer) then check (checker)."""

    async def assess(self, task: Task) -> Assessment:
        return "multi_step"

    async def plan(self, task: Task, ctx: RunContext) -> Plan:
        return Plan(
            steps=(
                Step(id="draft", agent=WRITER, payload={"step": "draft"}, timeout_s=5),
                Step(id="check", agent=CHECKER, payload={"step": "check"}, timeout_s=5),
            )
        )


class Agents:
    """Real AgentWorkers for the steps; every request they handle is counted."""

    def __init__(self, coordinator: RedisMessageCoordinator) -> None:
        self.coordinator = coordinator
        self.calls: list[tuple[str, str]] = []
        self.workers: list[AgentWorker] = []

    async def start(self, agent: AgentId, instance: str) -> None:
        worker = AgentWorker(
            self.coordinator,
            None,
            AgentId(agent.type, instance),
            poll_interval=0.1,
            visibility_timeout=2.0,
            grace_period=0.5,
            maintenance_interval=0.2,
        )

        @worker.on_request()
        async def handle(ctx: Any) -> dict[str, Any]:
            name = str(ctx.payload.get("step"))
            self.calls.append((ctx.message.correlation_id.split(":")[1], name))
            return {"done": name, "by": agent.type}

        await worker.start()
        self.workers.append(worker)

    async def stop(self) -> None:
        for worker in self.workers:
            await worker.stop(grace_period=0)
        self.workers.clear()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def coordinator(coordination_redis, key_prefix) -> AsyncIterator[RedisMessageCoordinator]:
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, backoff_base=0.05, backoff_max=0.05
    )
    yield coord
    await coord.aclose()


@pytest.fixture
def runs(store: PostgresMessageStore) -> PostgresPlanRunStore:
    return PostgresPlanRunStore(store)


@pytest.fixture
async def agents(coordinator) -> AsyncIterator[Agents]:
    made = Agents(coordinator)
    yield made
    await made.stop()


def driver(runtime: PlanRuntime) -> AgentWorker:
    return runtime.worker(
        poll_interval=0.1, visibility_timeout=2.0, grace_period=0.5, maintenance_interval=0.2
    )


def outcome(result: RunResult) -> tuple[Any, ...]:
    """What must be equal between an uninterrupted and a restored run."""
    return (
        result.status,
        result.mode,
        result.result,
        [(r.step_id, r.attempt, r.result) for r in result.steps],
    )


def test_the_store_is_a_run_recorder_and_0004_ships(store):
    assert isinstance(PostgresPlanRunStore(store), RunRecorder)
    assert (4, "plan_runs") in [(v, n) for v, n, _ in migrations()]


async def test_a_run_is_recorded_with_its_events_and_history_queries(
    coordinator, agents, runs, key_prefix
):
    await agents.start(WRITER, "w1")
    await agents.start(CHECKER, "c1")
    runtime = PlanRuntime(coordinator, planner=TwoSteps(), flags=FLAGS, store=runs)
    worker = driver(runtime)
    await worker.start()
    try:
        result = await runtime.execute(TASK, run_id="pg-1", timeout=30)
    finally:
        await worker.stop(grace_period=0)
    assert result.status is RunStatus.COMPLETED
    scope = run_scope(key_prefix, "default")

    stored = await runs.run("pg-1")
    assert stored is not None
    assert (stored.scope, stored.status, stored.ended_at is not None) == (
        scope,
        RunStatus.COMPLETED,
        True,
    )
    assert stored.version == (await runtime.store.require("pg-1")).version
    assert stored.result == result
    assert await runs.run("pg-1", scope="elsewhere") is None
    assert await runs.run("nope") is None

    events = await runs.run_events("pg-1")
    kinds = [e.kind for e in events]
    assert kinds[0] == "created"
    assert kinds[-1] == "completed"
    assert kinds.count("step_succeeded") == 2
    redis_kinds = [e.kind for e in await runtime.store.read_events("pg-1")]
    assert kinds == redis_kinds  # the same history, in the same order
    assert [e.version for e in events] == sorted(e.version for e in events)
    assert len(await runs.run_events("pg-1", limit=2)) == 2

    assert [r.run_id for r in await runs.runs(status="completed")] == ["pg-1"]
    assert await runs.runs(status=RunStatus.RUNNING) == []
    assert [r.run_id for r in await runs.runs(scope=scope, limit=1)] == ["pg-1"]
    assert await runs.unfinished_runs(scope) == []


async def test_snapshots_never_go_back_and_events_are_recorded_once(runs):
    state = RunState.model_validate(
        {
            "run_id": "v",
            "task": TASK.model_dump(),
            "mode": "single_shot",
            "policy": {},
            "status": "running",
            "created_ms": 1_700_000_000_000,
        }
    )
    v3 = state.model_copy(update={"version": 3})
    v2 = state.model_copy(update={"version": 2, "status": RunStatus.PLANNING})
    await runs.record_runs([RunChange("s", v3, (("a", {"n": 1}), ("b", {})))])
    await runs.record_runs([RunChange("s", v3, (("a", {"n": 1}), ("b", {})))])  # again
    await runs.record_runs([RunChange("s", v2, (("old", {}),))])  # late
    stored = await runs.run("v", scope="s")
    assert stored is not None
    assert (stored.version, stored.status) == (3, RunStatus.RUNNING)
    assert stored.created_at.year == 2023
    assert [(e.version, e.kind, e.data) for e in await runs.run_events("v")] == [
        (2, "old", {}),
        (3, "a", {"n": 1}),
        (3, "b", {}),
    ]
    [live] = await runs.unfinished_runs("s")
    assert live == v3
    await runs.record_runs([])  # nothing to do


_run_numbers = itertools.count()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    writes=st.lists(st.tuples(st.integers(1, 6), st.integers(0, 2)), min_size=1, max_size=8),
    batched=st.booleans(),
)
async def test_any_order_of_writes_keeps_the_newest_snapshot_and_each_event_once(
    runs, writes: list[tuple[int, int]], batched: bool
):
    # Writes of (version, number of events) arrive in any order, repeated (write-behind
    # late, write-through again): the newest version wins, each event is kept once.
    run_id = f"h{next(_run_numbers)}"
    base = RunState.model_validate(
        {
            "run_id": run_id,
            "task": TASK.model_dump(),
            "mode": "multi_step",
            "policy": {},
            "status": "running",
        }
    )
    changes = [
        RunChange(
            "h",
            base.model_copy(update={"version": v, "messages": (f"v{v}",)}),
            tuple((f"e{v}", {"i": i}) for i in range(n)),
        )
        for v, n in writes
    ]
    if batched:
        await runs.record_runs(changes)
    else:
        for change in changes:
            await runs.record_runs([change])
    stored = await runs.run(run_id, scope="h")
    assert stored is not None
    newest = max(v for v, _ in writes)
    assert stored.version == newest
    assert stored.state.messages == (f"v{newest}",)
    expected = sorted({(v, i) for v, n in writes for i in range(n)})
    got = [(e.version, e.data["i"]) for e in await runs.run_events(run_id, scope="h")]
    assert got == expected


async def test_failures_are_typed(runs, pg_dsn, schema):
    with pytest.raises(StoreConfigurationError, match="unknown run status"):
        await runs.runs(status="sleeping")
    with pytest.raises(StoreConfigurationError, match="limit"):
        await runs.runs(limit=0)
    with pytest.raises(StoreConfigurationError, match="limit"):
        await runs.run_events("x", limit=0)
    nul = RunState.model_validate(
        {
            "run_id": "n",
            "task": Task(agent=WRITER, payload={"t": "a\x00b"}).model_dump(),
            "mode": "single_shot",
            "policy": {},
            "status": "running",
        }
    )
    with pytest.raises(StorePayloadError, match="NUL"):
        await runs.record_runs([RunChange("s", nul)])
    async with PostgresMessageStore(pg_dsn, schema=f"{schema}_bare") as bare:
        with pytest.raises(StoreNotMigratedError):
            await PostgresPlanRunStore(bare).unfinished_runs("s")


async def test_a_migration_shipped_later_with_a_lower_version_still_applies(
    pg_dsn, schema, monkeypatch
):
    shipped = migrations()
    async with PostgresMessageStore(pg_dsn, schema=schema) as store:
        try:
            assert await store.migrate() == [v for v, _, _ in shipped]
            # Another feature's 0003 arrives after 0004 was applied (parallel work).
            later = sorted([*shipped, (3, "later", "CREATE TABLE later_one (x int);")])
            if any(v == 3 for v, _, _ in shipped):
                later = [*shipped, (9998, "later", "CREATE TABLE later_one (x int);")]
            monkeypatch.setattr(store_module, "migrations", lambda: later)
            applied = await store.migrate()
            assert len(applied) == 1
            assert await store.migrate() == []
            monkeypatch.setattr(
                store_module, "migrations", lambda: [*later, (4, "twin", "SELECT 1;")]
            )
            with pytest.raises(StoreConfigurationError, match="share a version"):
                await store.migrate()
        finally:
            await store.drop_schema()


async def test_redis_lost_mid_run_is_restored_and_ends_as_an_uninterrupted_run(
    coordinator, agents, runs, coordination_redis, key_prefix
):
    await agents.start(WRITER, "w1")
    await agents.start(CHECKER, "c1")
    runtime = PlanRuntime(coordinator, planner=TwoSteps(), flags=FLAGS, store=runs)
    worker = driver(runtime)
    await worker.start()
    baseline = await runtime.execute(TASK, run_id="base", timeout=30)
    await agents.stop()

    # The same task again, with no checker: it waits on its second step.
    await agents.start(WRITER, "w1")
    await runtime.start(TASK, run_id="lost")

    async def waiting_and_recorded() -> bool:
        state = await runtime.store.require("lost")
        stored = await runs.run("lost")
        return (
            state.status is RunStatus.RUNNING
            and state.cursor == 1
            and state.sent
            and stored is not None
            and stored.version == state.version
        )

    await eventually(waiting_and_recorded)
    await worker.stop(grace_period=0)
    await agents.stop()

    # Redis loses everything of this deployment (only its prefix).
    await delete_prefix(coordination_redis, key_prefix)
    assert await runtime.store.load("lost") is None
    assert await runtime.restore() == 1  # "base" ended: not restored
    assert await runtime.restore() == 0  # twice is harmless
    assert await runtime.store.load("base") is None
    restored = await runtime.store.require("lost")
    assert restored.status is RunStatus.RUNNING
    assert [e.kind for e in await runtime.store.read_events("lost")] == ["restored"]

    await agents.start(WRITER, "w2")
    await agents.start(CHECKER, "c1")
    worker = driver(runtime)
    await worker.start()
    try:

        async def ended() -> bool:
            # The driver records the result before it acks the message that ended the run.
            stored = await runs.run("lost")
            return stored is not None and stored.status.terminal

        await eventually(ended)
    finally:
        await worker.stop(grace_period=0)

    result = await runtime.result("lost")
    assert outcome(result) == outcome(baseline)
    # Each step ran once per run: the finished draft was not re-run after the restore.
    assert sorted(agents.calls) == sorted(
        [("base", "draft"), ("base", "check"), ("lost", "draft"), ("lost", "check")]
    )
    stored = await runs.run("lost")
    assert stored is not None
    assert stored.status is RunStatus.COMPLETED
    assert stored.result == result
    assert await runs.unfinished_runs(run_scope(key_prefix, "default")) == []


async def test_with_a_message_store_too_messages_then_runs_restore_each_step_once(
    coordination_redis, key_prefix, store, runs
):
    # The coordinator records its messages in Postgres as well: after the loss both are
    # restored, messages first; the run's re-sent ids are then deduplicated.
    coordinator = RedisMessageCoordinator(
        coordination_redis,
        key_prefix=key_prefix,
        store=store,
        backoff_base=0.05,
        backoff_max=0.05,
    )
    agents = Agents(coordinator)
    try:
        await agents.start(WRITER, "w1")
        runtime = PlanRuntime(coordinator, planner=TwoSteps(), flags=FLAGS, store=runs)
        worker = driver(runtime)
        await worker.start()
        await runtime.start(TASK, run_id="both")

        async def waiting_and_recorded() -> bool:
            state = await runtime.store.require("both")
            stored = await runs.run("both")
            return (
                state.status is RunStatus.RUNNING
                and state.sent
                and state.cursor == 1
                and stored is not None
                and stored.version == state.version
            )

        await eventually(waiting_and_recorded)
        await worker.stop(grace_period=0)
        await agents.stop()
        await coordinator.flush_store()

        await delete_prefix(coordination_redis, key_prefix)
        assert await store.restore(coordinator) >= 1  # the check request, the timers
        assert await runtime.restore() == 1
        stats = await coordinator.queue_stats(CHECKER)
        assert sum(stats.ready.values()) == 1  # the request once, not once per restore

        await agents.start(CHECKER, "c1")
        worker = driver(runtime)
        await worker.start()
        try:

            async def ended() -> bool:
                stored = await runs.run("both")
                return stored is not None and stored.status.terminal

            await eventually(ended)
        finally:
            await worker.stop(grace_period=0)
        result = await runtime.result("both")
        assert result.status is RunStatus.COMPLETED
        assert sorted(agents.calls) == [("both", "check"), ("both", "draft")]
    finally:
        await agents.stop()
        await coordinator.aclose()
