"""The demo's plan scene: a task planned into steps on agents, a retry and a replan.

A rule-based :class:`QuestPlanner` (no LLM) plans the task "prepare a quest behind the
rusty gate" into three steps on two agent types — ``lore_keeper`` (two instances,
``lk-1`` and ``lk-2``, competing on the type queue) and ``quest_writer`` (``qw-1``):

1. ``gather_lore`` (any lore keeper) fails once — the archive is locked — and the
   :class:`QuestReflector` retries it (attempt 2 succeeds);
2. ``outline`` (quest writer);
3. ``check_canon`` (any lore keeper) finds a gap: the reflector asks for a new plan and
   the planner answers with ``fill_gap`` then ``write_quest``; the run completes.

The run goes through :class:`~tta_agent_coordination.plans.PlanRuntime` and one driver
worker, exactly as a host application would run it; the scene follows the run's event
stream (as any process could) and shows each event as it arrives. Its coordinator does
not redeliver a failed request (``retry_attempts=0``), so a failed step comes back to
the run at once and the *run* decides to retry it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import CoordinationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.plans import (
    Assessment,
    Decision,
    Plan,
    PlanRuntime,
    Reflection,
    RunContext,
    RunEvent,
    RunResult,
    RunStatus,
    RuntimeFlags,
    Step,
    StepRecord,
    Task,
)
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.runtime.context import MessageContext
from tta_agent_coordination.runtime.worker import AgentWorker

__all__ = [
    "FAILS_ONCE",
    "LORE_KEEPER",
    "QUEST_WRITER",
    "PlanScene",
    "PlanSceneError",
    "PlanSceneResult",
    "QuestPlanner",
    "QuestReflector",
    "StepRun",
]

LORE_KEEPER = AgentId("lore_keeper")
"""Any lore keeper: the type queue ``lk-1`` and ``lk-2`` share."""
QUEST_WRITER = AgentId("quest_writer")
"""Any quest writer (``qw-1``)."""
FAILS_ONCE: Mapping[str, int] = {"gather_lore": 1}
"""How many times each kind of step fails before it succeeds (the scene's default)."""

_LORE_KEEPERS = ("lk-1", "lk-2")
_FIRST_PLAN = (
    ("gather_lore", LORE_KEEPER),
    ("outline", QUEST_WRITER),
    ("check_canon", LORE_KEEPER),
)
_SECOND_PLAN = (("fill_gap", LORE_KEEPER), ("write_quest", QUEST_WRITER))
_GAP = "nobody knows who locked the gate"

Level = Literal["info", "ok", "warn", "error"]
Emit = Callable[[str, str, Level], None]
"""``emit(agent, text, level)``: one line of the demo's story."""


class PlanSceneError(CoordinationError):
    """The plan scene's run did not end in time."""


class QuestPlanner:
    """Rules, no LLM: three steps first; after a canon gap, the two that fill it."""

    async def assess(self, task: Task) -> Assessment:
        """Multi-step when the description is more than three words."""
        return "multi_step" if len(task.description.split()) > 3 else "single_shot"

    async def plan(self, task: Task, ctx: RunContext) -> Plan:
        """The first plan, or (after a replan) the steps that fill the gap."""
        names = _FIRST_PLAN if ctx.replans == 0 else _SECOND_PLAN
        place = str(task.payload.get("place", "?"))
        return Plan(
            steps=tuple(
                Step(id=kind, agent=agent, payload={"kind": kind, "place": place}, timeout_s=5)
                for kind, agent in names
            )
        )


class QuestReflector:
    """Rules, no LLM: retry a failure; replan once when the canon has a gap; else go on."""

    async def reflect(self, step: StepRecord, ctx: RunContext) -> Reflection:
        """Judge one step attempt."""
        if not step.result.ok:
            return Reflection(decision=Decision.RETRY, reason="the step failed; try again")
        gaps: list[Any] = list(step.result.output.get("gaps") or [])
        if gaps and ctx.replans == 0:
            return Reflection(decision=Decision.REPLAN, reason=f"canon gap: {gaps[0]}")
        return Reflection(decision=Decision.CONTINUE, reason="looks right")


class _QuestNarrator:
    """What the player is told (the runtime's conversation mode)."""

    async def opening(self, task: Task) -> str | None:
        return f"I'll {task.description}."

    async def progress(self, step: StepRecord, ctx: RunContext) -> str | None:
        if step.result.ok:
            return f"{step.step_id} done by {step.result.output.get('by')}"
        return None  # the failure is already shown as an event

    async def closing(self, result: RunResult) -> str | None:
        return f"the quest is {result.status.value} after {len(result.steps)} step attempts"


@dataclass(frozen=True)
class StepRun:
    """One execution of a step's request by an agent (what the agent saw)."""

    message_id: str
    """The request's id: deterministic per step attempt (``run:<id>:<plan>:<i>:<n>``)."""
    kind: str
    by: str
    ok: bool


@dataclass
class PlanSceneResult:
    """What the plan scene did."""

    run_id: str | None = None
    status: str = "not run"
    reason: str | None = None
    attempts: list[StepRecord] = field(default_factory=list[StepRecord])
    """Every finished step attempt, as the run recorded it."""
    replans: int = 0
    events: list[str] = field(default_factory=list[str])
    """The ``kind`` of each run event the scene followed, in order."""
    messages: list[str] = field(default_factory=list[str])
    """The narrator's messages."""
    executions: list[StepRun] = field(default_factory=list[StepRun])
    """Every time an agent ran a step's request."""
    unsettled: int = 0
    """Messages left in the step agents' queues after the workers stopped."""

    @property
    def retried(self) -> int:
        """Step attempts after a step's first (a retry each)."""
        return sum(1 for r in self.attempts if r.attempt > 1)

    @property
    def rerun(self) -> list[str]:
        """Step requests an agent ran more than once (none: exactly once each)."""
        counts = Counter(e.message_id for e in self.executions)
        return sorted(m for m, n in counts.items() if n > 1)


class PlanScene:
    """The plan scene under the demo's key prefix (see the module docstring).

    Args:
        client: the demo's Redis (or FakeRedis) client; not closed here.
        key_prefix: the demo's prefix (its caller deletes every key under it).
        emit: where the scene's story goes.
        step_timeout_s: the run's own time budget (``run_timeout_s``: a run still going
            then ends as ``budget_exhausted``, and its check fails with that reason);
            the scene stops waiting, with :class:`PlanSceneError`, after twice that
            (nothing ended the run: no driver is advancing it).
        failures: how many times each kind of step fails before it succeeds
            (:data:`FAILS_ONCE` by default).
        poll_interval: the workers' poll interval.
    """

    def __init__(
        self,
        client: RedisClient,
        key_prefix: str,
        emit: Emit,
        *,
        step_timeout_s: float = 20.0,
        failures: Mapping[str, int] | None = None,
        poll_interval: float = 0.2,
    ) -> None:
        self._emit = emit
        # Twice the run's budget: its deadline (a delayed message) ends it first.
        self._wait_s = 2 * step_timeout_s
        self._failures = Counter(failures if failures is not None else FAILS_ONCE)
        # No redelivery: a failed step returns to the run at once, which retries it.
        self.coordinator = RedisMessageCoordinator(client, key_prefix=key_prefix, retry_attempts=0)
        """The scene's queues (same prefix as the demo's, other agent types)."""
        self.runtime = PlanRuntime(
            self.coordinator,
            planner=QuestPlanner(),
            reflector=QuestReflector(),
            narrator=_QuestNarrator(),
            flags=RuntimeFlags(
                enhanced=True,
                reflection=True,
                conversation=True,
                max_retries_per_step=2,
                max_replans=1,
                run_timeout_s=step_timeout_s,
            ),
            instance="demo",
        )
        self.agents: list[tuple[str, str, AgentWorker]] = [
            *(
                (f"lore_keeper:{name}", "plan steps (rules)", self._agent(LORE_KEEPER, name))
                for name in _LORE_KEEPERS
            ),
            ("quest_writer:qw-1", "plan steps (rules)", self._agent(QUEST_WRITER, "qw-1")),
        ]
        """``(label, role, worker)`` of each worker, in start order (for the live view)."""
        driver = self.runtime.worker("driver-1", poll_interval=poll_interval)
        self.agents.append((str(driver.agent_id), "drives the plan run", driver))
        self._poll = poll_interval
        self.result = PlanSceneResult()
        self._stopped = False

    def _agent(self, agent_type: AgentId, name: str) -> AgentWorker:
        label = f"{agent_type.type}:{name}"
        worker = AgentWorker(self.coordinator, None, AgentId(agent_type.type, name))

        @worker.on_request()
        async def work(ctx: MessageContext[dict[str, Any]]) -> dict[str, Any]:
            kind = str(ctx.payload.get("kind"))
            failing = self._failures[kind] > 0
            self._failures[kind] -= 1
            self.result.executions.append(StepRun(ctx.message.message_id, kind, label, not failing))
            if failing:
                raise RuntimeError("the archive is locked")
            output: dict[str, Any] = {"step": kind, "by": label}
            if kind == "check_canon":
                output["gaps"] = [_GAP]
            return output

        return worker

    async def run(self) -> PlanSceneResult:
        """Start the workers, run the task's plan to its end while showing its events, stop.

        Raises:
            PlanSceneError: the run did not end within twice the step timeout.
            CoordinationError: the back-end failed.
        """
        try:
            for _label, _role, worker in self.agents:
                await worker.start()
            self._emit(
                "demo",
                "plan agents up: lore_keeper lk-1 and lk-2 (one queue), quest_writer qw-1",
                "info",
            )
            task = Task(
                agent=QUEST_WRITER,
                payload={"place": "the rusty gate"},
                description="prepare a quest behind the rusty gate",
                session_id="demo-plan",
            )
            run_id = await self.runtime.start(task)
            self.result.run_id = run_id
            try:
                async with asyncio.timeout(self._wait_s):
                    async for event in self.runtime.events(run_id):
                        self._show(event)
            except TimeoutError:
                raise PlanSceneError(
                    f"the plan run did not end within {self._wait_s:g}s (is a driver running?)"
                ) from None
            outcome = await self.runtime.result(run_id)
            self.result.status = outcome.status.value
            self.result.reason = outcome.reason
            self.result.attempts = list(outcome.steps)
            self.result.replans = outcome.replans
            self.result.messages = list(outcome.messages)
        finally:
            await self.stop()
        self.result.unsettled = await self._unsettled()
        return self.result

    def _show(self, event: RunEvent) -> None:
        self.result.events.append(event.kind)
        data = event.data
        level: Level = "info"
        match event.kind:
            case "planned" | "replanned":
                text = f"{event.kind}: {_steps_text(data.get('steps'))}"
            case "step_started":
                text = f"step {data.get('step', '?')} (attempt {data.get('attempt', '?')})"
                text += f" → any {data.get('agent', '?')}"
            case "step_succeeded":
                text, level = f"step {data.get('step', '?')} succeeded", "ok"
            case "step_failed":
                message = _field(data.get("error"), "message")
                text, level = f"step {data.get('step', '?')} failed: {message}", "warn"
            case "reflected":
                text = f"reflection: {data.get('decision', '?')} ({data.get('reason', '')})"
                level = "warn" if data.get("decision") in ("retry", "replan") else "info"
            case "message":
                text = f"says: {data.get('text', '')}"
            case kind if event.terminal:
                text = f"run {kind}: {data.get('reason', '')}"
                level = "ok" if kind == RunStatus.COMPLETED.value else "error"
            case kind:
                text = kind
        self._emit("plan run (events)", text, level)

    async def stop(self) -> None:
        """Stop the scene's workers and close its coordinator (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        for _label, _role, worker in self.agents:
            await worker.stop(grace_period=2.0)
        await self.coordinator.aclose()

    async def _unsettled(self) -> int:
        queues = [LORE_KEEPER, QUEST_WRITER, *(w.agent_id for _l, _r, w in self.agents[:-1])]
        total = 0
        for agent_id in queues:
            total += (await self.coordinator.queue_stats(agent_id)).unsettled
        return total

    def checks(self) -> list[tuple[str, object, object, bool]]:
        """``(name, expected, actual, ok)`` of each expectation of the scene."""
        r = self.result
        status = r.status if r.status == "completed" else f"{r.status} ({r.reason})"
        keepers = {e.by for e in r.executions if e.by.startswith(f"{LORE_KEEPER.type}:")}
        return [
            ("plan run completed", "completed", status, r.status == "completed"),
            ("plan steps retried after a failure", 1, r.retried, r.retried == 1),
            ("plan replanned by the reflection", 1, r.replans, r.replans == 1),
            (
                "plan step requests run once each",
                len(r.attempts),
                f"{len(r.executions)}, rerun: {', '.join(r.rerun) or 'none'}",
                not r.rerun and len(r.executions) == len(r.attempts) > 0,
            ),
            (
                "plan lore_keeper steps taken by lk-1/lk-2",
                "lk-1 and/or lk-2",
                ", ".join(sorted(k.rpartition(":")[2] for k in keepers)) or "-",
                bool(keepers) and keepers <= {f"lore_keeper:{n}" for n in _LORE_KEEPERS},
            ),
            ("plan messages left unsettled", 0, r.unsettled, r.unsettled == 0),
        ]


def _steps_text(steps: object) -> str:
    """``a → b → c`` from a ``planned`` event's step list (``?`` if it has none)."""
    if not isinstance(steps, list) or not steps:
        return "?"
    items = cast("list[object]", steps)
    return " → ".join(_field(s, "id") for s in items)


def _field(value: object, key: str) -> str:
    """``value[key]`` of an event's JSON object, as text (``?`` when it is not there)."""
    if isinstance(value, dict):
        return str(cast("dict[str, Any]", value).get(key, "?"))
    return "?"
