"""The pluggable parts of a plan runtime: planner, reflector, narrator.

They are where a host application puts its intelligence (an LLM, rules, a search); the
core never holds one. Each is called by a run's driver with a timeout, and may be called
again for the same input after a driver crash (its answer is applied once), so it
should not have side effects of its own.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from tta_agent_coordination.plans.models import (
    Plan,
    Reflection,
    RunContext,
    RunResult,
    StepRecord,
    Task,
)

__all__ = ["Assessment", "Narrator", "Planner", "Reflector"]

Assessment = Literal["single_shot", "multi_step"]
"""A planner's judgement of a task: one request is enough, or it needs steps."""


@runtime_checkable
class Planner(Protocol):
    """Decides whether a task needs planning, and decomposes it into steps."""

    async def assess(self, task: Task) -> Assessment:
        """``single_shot`` or ``multi_step`` (used with ``planning_threshold="multi_step"``)."""
        ...

    async def plan(self, task: Task, ctx: RunContext) -> Plan:
        """The plan for ``task``; on a replan, ``ctx.records`` holds what ran so far."""
        ...


@runtime_checkable
class Reflector(Protocol):
    """Judges each step attempt: continue, retry, replan, abort or complete."""

    async def reflect(self, step: StepRecord, ctx: RunContext) -> Reflection:
        """The verdict on ``step`` (its ``result`` says how it went)."""
        ...


@runtime_checkable
class Narrator(Protocol):
    """The conversation engine: what the user is told as the run goes on."""

    async def opening(self, task: Task) -> str | None:
        """The first message (None: say nothing)."""
        ...

    async def progress(self, step: StepRecord, ctx: RunContext) -> str | None:
        """A message after a step attempt (None: say nothing)."""
        ...

    async def closing(self, result: RunResult) -> str | None:
        """The last message, once the run has ended (None: say nothing)."""
        ...
