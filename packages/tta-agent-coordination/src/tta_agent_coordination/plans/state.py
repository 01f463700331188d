"""The run's state and the inputs and outputs of the state machine (``machine.py``).

:class:`RunState` is everything about a run (one JSON document in Redis); the events are
what can happen to a run; :class:`Transition` is what ``advance`` returns and
:class:`Work` what ``next_work`` says a driver must do. Pure data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tta_agent_coordination.plans.flags import PlannerFallback
from tta_agent_coordination.plans.models import (
    Plan,
    Reflection,
    RunContext,
    RunMode,
    RunResult,
    RunStatus,
    Step,
    StepRecord,
    StepResult,
    Task,
    step_key_of,
)

__all__ = [
    "CLOSING",
    "OPENING",
    "Cancelled",
    "DeadlineReached",
    "Event",
    "Narrated",
    "Planned",
    "PlanningFailed",
    "Policy",
    "Reflected",
    "ReflectionFailed",
    "RunState",
    "StepFinished",
    "StepSent",
    "Transition",
    "Work",
]

OPENING = "open"
"""Narration anchor of the opening message."""
CLOSING = "close"
"""Narration anchor of the closing message."""


class Policy(BaseModel):
    """The budgets and switches a run was started with (fixed for its whole life)."""

    model_config = ConfigDict(frozen=True)

    max_steps: int = Field(default=20, ge=1)
    max_retries_per_step: int = Field(default=2, ge=0)
    max_replans: int = Field(default=3, ge=0)
    reflection: bool = False
    conversation: bool = False
    planner_fallback: PlannerFallback = "single_shot"


class RunState(BaseModel):
    """Everything about a run; stored as one JSON document (see ``store.py``).

    ``cursor``/``attempt`` name the step attempt in flight (``RUNNING``) or just
    finished (``REFLECTING``: its record is ``pending``); ``sent`` says its request was
    sent, so that a resumed driver never sends it twice.
    """

    model_config = ConfigDict(frozen=True)

    run_id: str
    task: Task
    mode: RunMode
    policy: Policy
    status: RunStatus
    plan: Plan | None = None
    plan_version: int = 0
    cursor: int = 0
    attempt: int = 0
    sent: bool = False
    started_steps: int = 0
    replans: int = 0
    records: tuple[StepRecord, ...] = ()
    pending: StepRecord | None = None
    messages: tuple[str, ...] = ()
    narrated: tuple[str, ...] = ()
    reason: str | None = None
    result: StepResult | None = None
    created_ms: int = 0
    """When the run was created (ms since the epoch), for its duration; never read here."""
    version: int = 0

    @property
    def current_key(self) -> str:
        """The key of the attempt in flight (meaningful while ``RUNNING``)."""
        return step_key_of(self.plan_version, self.cursor, self.attempt)

    @property
    def current_step(self) -> Step | None:
        """The step in flight or being reflected on, if any."""
        if self.plan is None or self.status not in (RunStatus.RUNNING, RunStatus.REFLECTING):
            return None
        return self.plan.steps[self.cursor]

    def context(self) -> RunContext:
        """The read-only view a planner and a reflector get."""
        return RunContext(
            run_id=self.run_id,
            task=self.task,
            plan=self.plan,
            plan_version=self.plan_version,
            records=self.records,
            replans=self.replans,
        )

    def to_result(self) -> RunResult:
        """The run as a :class:`RunResult`."""
        return RunResult(
            run_id=self.run_id,
            status=self.status,
            mode=self.mode,
            result=self.result,
            steps=self.records,
            messages=self.messages,
            reason=self.reason,
            replans=self.replans,
            plan_version=self.plan_version,
        )


# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Planned:
    """The planner returned ``plan`` (for the plan version being planned)."""

    plan: Plan
    plan_version: int


@dataclass(frozen=True, slots=True)
class PlanningFailed:
    """The planner raised, hung or returned something that is not a plan."""

    error: str
    plan_version: int


@dataclass(frozen=True, slots=True)
class StepSent:
    """The request of attempt ``key`` was sent (and its timeout scheduled)."""

    key: str


@dataclass(frozen=True, slots=True)
class StepFinished:
    """Attempt ``key`` finished with ``result`` (a reply, or a timeout as an error)."""

    key: str
    result: StepResult


@dataclass(frozen=True, slots=True)
class Reflected:
    """The reflector judged the pending attempt ``key``."""

    key: str
    reflection: Reflection


@dataclass(frozen=True, slots=True)
class ReflectionFailed:
    """The reflector raised or hung on attempt ``key``: the no-reflection rule decides."""

    key: str
    error: str


@dataclass(frozen=True, slots=True)
class Cancelled:
    """Somebody cancelled the run."""

    reason: str = "cancelled"


@dataclass(frozen=True, slots=True)
class DeadlineReached:
    """The run's timeout passed."""


@dataclass(frozen=True, slots=True)
class Narrated:
    """The narrator's message for ``anchor`` (None: it had nothing, or failed)."""

    anchor: str
    text: str | None


Event = (
    Planned
    | PlanningFailed
    | StepSent
    | StepFinished
    | Reflected
    | ReflectionFailed
    | Cancelled
    | DeadlineReached
    | Narrated
)


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of :func:`advance`.

    Attributes:
        state: the next state (the same object when the event was ignored).
        applied: False when the event did not fit the state and changed nothing.
        events: run events to append to the stream, as (kind, data).
        cancel_timeouts: step keys whose scheduled timeout may be cancelled.
    """

    state: RunState
    applied: bool
    events: tuple[tuple[str, dict[str, Any]], ...] = ()
    cancel_timeouts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Work:
    """What a driver must do next for a run (from :func:`next_work`).

    ``kind`` is ``plan`` (call the planner for ``plan_version``), ``send`` (send
    ``step`` as attempt ``key``), ``reflect`` (judge ``record``) or ``narrate`` (the
    narrator's message for ``anchor``; ``record`` for a progress message).
    """

    kind: str
    plan_version: int = 0
    key: str = ""
    step: Step | None = None
    record: StepRecord | None = None
    anchor: str = ""
