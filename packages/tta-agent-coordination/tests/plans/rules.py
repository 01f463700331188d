"""A deterministic planner and reflector shared by the in-process and subprocess tests.

Pure functions of their input (no memory between calls), so that a driver killed and
replaced by another process makes exactly the same decisions.
"""

from tta_agent_coordination import AgentId
from tta_agent_coordination.plans import (
    Assessment,
    Decision,
    Plan,
    Reflection,
    RunContext,
    Step,
    StepRecord,
    Task,
)

WRITER = AgentId("writer")
CHECKER = AgentId("checker")


class StatelessPlanner:
    """Plans draft (writer) then check (checker)."""

    async def assess(self, task: Task) -> Assessment:
        return "multi_step"

    async def plan(self, task: Task, ctx: RunContext) -> Plan:
        text = str(task.payload.get("text", ""))
        return Plan(
            steps=(
                Step(id="draft", agent=WRITER, payload={"step": "draft", "text": text}),
                Step(id="check", agent=CHECKER, payload={"step": "check", "text": text}),
            )
        )


class StatelessReflector:
    """Continue after a success, retry after a failure."""

    async def reflect(self, step: StepRecord, ctx: RunContext) -> Reflection:
        if step.result.ok:
            return Reflection(decision=Decision.CONTINUE, reason="ok")
        return Reflection(decision=Decision.RETRY, reason="failed")
