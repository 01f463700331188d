"""A plan on agents, with a rule-based planner and reflector (no LLM).

The task "write a report" is planned into four steps on two agent types:
``researcher`` (two instances competing on the type queue) and ``writer``:

1. ``gather`` (researcher) fails once: the run retries it (attempt 2 succeeds);
2. ``outline`` and ``draft`` (writer);
3. ``review`` (researcher) finds a gap: the reflector asks for a new plan, and the
   planner answers with ``gather_more`` then ``redraft``; the run completes.

A narrator tells the story as it goes (conversation mode), and the run's events are
followed as any other process would. Runs on an embedded FakeRedis in a few seconds, or
on the Redis at ``TTA_COORD_REDIS_URL``; exits 0 only when the run completed with a
retry and a replan.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from typing import Any

from tta_agent_coordination import AgentId, AgentWorker, MessageContext, RedisMessageCoordinator
from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.observability.logging import configure_logging
from tta_agent_coordination.plans import (
    Assessment,
    Decision,
    Plan,
    PlanRuntime,
    Reflection,
    RunContext,
    RunResult,
    RunStatus,
    RuntimeFlags,
    Step,
    StepRecord,
    Task,
)
from tta_agent_coordination.settings import CoordinationSettings
from tta_agent_coordination.testing import delete_prefix

RESEARCHER = AgentId("researcher")
WRITER = AgentId("writer")


class RulePlanner:
    """Long tasks need steps; a replan fills the gap the review found."""

    async def assess(self, task: Task) -> Assessment:
        """Multi-step when the description is more than three words."""
        return "multi_step" if len(task.description.split()) > 3 else "single_shot"

    async def plan(self, task: Task, ctx: RunContext) -> Plan:
        """Four steps first; after a review's gap, the two that fill it."""
        topic = str(task.payload["topic"])
        if ctx.replans == 0:
            names = [("gather", RESEARCHER), ("outline", WRITER), ("draft", WRITER)]
            names.append(("review", RESEARCHER))
        else:
            names = [("gather_more", RESEARCHER), ("redraft", WRITER)]
        return Plan(
            steps=tuple(
                Step(id=name, agent=agent, payload={"kind": name, "topic": topic}, timeout_s=5)
                for name, agent in names
            )
        )


class RuleReflector:
    """Retry failures; replan once when a review reports a gap; else go on."""

    async def reflect(self, step: StepRecord, ctx: RunContext) -> Reflection:
        """Judge one step attempt."""
        if not step.result.ok:
            return Reflection(decision=Decision.RETRY, reason="the step failed; try again")
        gaps = step.result.output.get("gaps", [])
        if gaps and ctx.replans == 0:
            return Reflection(decision=Decision.REPLAN, reason=f"review found gaps: {gaps}")
        return Reflection(decision=Decision.CONTINUE, reason="looks good")


class Narrator:
    """What the user is told."""

    async def opening(self, task: Task) -> str | None:
        """The first message."""
        return f"I'll {task.description}."

    async def progress(self, step: StepRecord, ctx: RunContext) -> str | None:
        """A message per step attempt."""
        if step.result.ok:
            return f"{step.step_id} done by {step.result.output.get('by')}."
        return f"{step.step_id} failed ({step.result.error.message if step.result.error else ''})"

    async def closing(self, result: RunResult) -> str | None:
        """The last message."""
        return f"Finished: {result.status.value} after {len(result.steps)} step attempts."


FAILED_ONCE: set[str] = set()
"""Steps that have failed their one planned failure (shared by every instance)."""


def agent_worker(coordinator: RedisMessageCoordinator, agent: AgentId, name: str) -> AgentWorker:
    """A worker of ``agent``'s type that does every kind of step it is asked."""
    worker = AgentWorker(coordinator, None, AgentId(agent.type, name), poll_interval=0.2)

    @worker.on_request()
    async def work(ctx: MessageContext[dict[str, Any]]) -> dict[str, Any]:
        kind = str(ctx.payload["kind"])
        if kind == "gather" and "gather" not in FAILED_ONCE:
            FAILED_ONCE.add("gather")
            raise RuntimeError("the library was closed")
        output: dict[str, Any] = {"step": kind, "by": f"{agent.type}:{name}"}
        if kind == "review":
            output["gaps"] = ["no sources for section 2"]
        return output

    return worker


def connect() -> tuple[RedisClient, str]:
    """The Redis at ``TTA_COORD_REDIS_URL`` (any form: Cluster, Sentinel), or a FakeRedis."""
    url = os.environ.get("TTA_COORD_REDIS_URL")
    if url:
        return CoordinationSettings(redis_url=url).redis_client(), url
    from tta_agent_coordination.testing import fake_redis

    return fake_redis(), "an embedded FakeRedis"


async def main() -> int:
    """Run the plan; 0 when it completed with a retry and a replan."""
    configure_logging("CRITICAL")  # the failure of 'gather' is on purpose
    client, where = connect()
    prefix = f"example-{uuid.uuid4().hex[:8]}"
    # retry_attempts=0: a failed step comes back to the run at once (the run retries).
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix, retry_attempts=0)
    flags = RuntimeFlags(enhanced=True, reflection=True, conversation=True)
    runtime = PlanRuntime(
        coordinator,
        planner=RulePlanner(),
        reflector=RuleReflector(),
        narrator=Narrator(),
        flags=flags,
    )
    workers = [
        agent_worker(coordinator, RESEARCHER, "r1"),
        agent_worker(coordinator, RESEARCHER, "r2"),
        agent_worker(coordinator, WRITER, "w1"),
        runtime.worker(poll_interval=0.2),
    ]
    print(f"plan runtime on {where} (prefix {prefix})")
    try:
        for worker in workers:
            await worker.start()
        task = Task(
            agent=WRITER,
            payload={"topic": "durable agents"},
            description="write a report on durable agents",
        )
        run_id = await runtime.start(task)
        async for event in runtime.events(run_id):
            details = ", ".join(f"{k}={v}" for k, v in sorted(event.data.items()))
            print(f"  [{event.kind}] {details}")
        result = await runtime.result(run_id)
        for message in result.messages:
            print(f"> {message}")
        retried = any(r.attempt == 2 for r in result.steps)
        ok = result.status is RunStatus.COMPLETED and retried and result.replans == 1
        print("OK" if ok else f"FAILED: {result.status.value}, replans {result.replans}")
        return 0 if ok else 1
    finally:
        for worker in workers:
            await worker.stop(grace_period=0)
        await coordinator.aclose()
        await delete_prefix(client, prefix)  # on every primary of a Cluster too
        await client.aclose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
