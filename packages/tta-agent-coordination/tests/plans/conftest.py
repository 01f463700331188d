import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tta_agent_coordination import AgentId, AgentWorker, RedisMessageCoordinator
from tta_agent_coordination.errors import PermanentError
from tta_agent_coordination.plans import (
    Assessment,
    Decision,
    Plan,
    PlanRuntime,
    Reflection,
    RunContext,
    RuntimeFlags,
    Step,
    StepRecord,
    Task,
)

WRITER = AgentId("writer")
CHECKER = AgentId("checker")


@pytest.fixture
async def coordinator(coordination_redis, key_prefix) -> AsyncIterator[RedisMessageCoordinator]:
    coord = RedisMessageCoordinator(
        coordination_redis,
        key_prefix=key_prefix,
        backoff_base=0.05,
        backoff_factor=1.0,
        backoff_max=0.05,
        retry_attempts=0,
    )
    yield coord
    await coord.aclose()


class Agents:
    """Step agents served by real AgentWorkers; counts every request they handle."""

    def __init__(self, coordinator: RedisMessageCoordinator) -> None:
        self.coordinator = coordinator
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail_first: set[str] = set()
        self.slow_first: dict[str, float] = {}
        self.hang: set[str] = set()
        self.workers: list[AgentWorker] = []

    async def start(self, agent: AgentId = WRITER, instance: str = "i1") -> AgentWorker:
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
            payload = dict(ctx.payload)
            name = str(payload.get("step", agent.type))
            self.calls.append((name, payload))
            if payload.get("permanent"):
                raise PermanentError(f"{name} refused")
            if name in self.fail_first:
                self.fail_first.discard(name)
                raise RuntimeError(f"{name} failed once")
            if name in self.slow_first:
                await asyncio.sleep(self.slow_first.pop(name))
            if name in self.hang:
                await asyncio.sleep(30)
            return {"done": name, "by": agent.type, "input": payload.get("text", "")}

        await worker.start()
        self.workers.append(worker)
        return worker

    async def stop(self) -> None:
        for worker in self.workers:
            await worker.stop(grace_period=0)


@pytest.fixture
async def agents(coordinator) -> AsyncIterator[Agents]:
    made = Agents(coordinator)
    yield made
    await made.stop()


class RulePlanner:
    """Plans 'a+b' as steps a (writer) then b (checker); replans drop failed steps."""

    def __init__(self, steps: tuple[str, ...] = ("draft", "check"), timeout_s: float = 5.0):
        self.steps = steps
        self.timeout_s = timeout_s
        self.plans = 0
        self.verdict: Assessment = "multi_step"

    async def assess(self, task: Task) -> Assessment:
        return self.verdict

    async def plan(self, task: Task, ctx: RunContext) -> Plan:
        self.plans += 1
        return Plan(
            steps=tuple(
                Step(
                    id=name,
                    agent=WRITER if i % 2 == 0 else CHECKER,
                    payload={"step": name, "text": task.payload.get("text", "")},
                    timeout_s=self.timeout_s,
                )
                for i, name in enumerate(self.steps)
            )
        )


class ScriptedReflector:
    """Returns the scripted decisions in order, then continue (or retry on failure)."""

    def __init__(self, decisions: list[Reflection] | None = None) -> None:
        self.decisions = list(decisions or [])
        self.seen: list[StepRecord] = []

    async def reflect(self, step: StepRecord, ctx: RunContext) -> Reflection:
        self.seen.append(step)
        if self.decisions:
            return self.decisions.pop(0)
        if step.result.ok:
            return Reflection(decision=Decision.CONTINUE, reason="fine")
        return Reflection(decision=Decision.RETRY, reason="try again")


DriverFactory = Callable[..., Awaitable[tuple[PlanRuntime, AgentWorker]]]


@pytest.fixture
async def make_runtime(coordinator) -> AsyncIterator[DriverFactory]:
    workers: list[AgentWorker] = []

    async def factory(
        planner: Any = None, *, drive: bool = True, flags: RuntimeFlags | None = None, **kwargs: Any
    ) -> tuple[PlanRuntime, AgentWorker]:
        flags = flags or RuntimeFlags(enhanced=True, run_timeout_s=20.0)
        runtime = PlanRuntime(coordinator, planner=planner or RulePlanner(), flags=flags, **kwargs)
        worker = runtime.worker(
            poll_interval=0.1, visibility_timeout=2.0, grace_period=0.5, maintenance_interval=0.2
        )
        if drive:
            await worker.start()
            workers.append(worker)
        return runtime, worker

    yield factory
    for worker in workers:
        await worker.stop(grace_period=0)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Wait until ``await check()`` is true (polling), failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def queue_drained(coordinator: RedisMessageCoordinator, agent: AgentId) -> None:
    """Wait until nothing is ready or leased in ``agent``'s queue (delayed timers aside)."""

    async def drained() -> bool:
        stats = await coordinator.queue_stats(agent)
        return sum(stats.ready.values()) + stats.leased == 0

    await eventually(drained)
