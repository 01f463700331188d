"""The plan runtime's data: tasks, plans, steps, results, reflections and runs.

Plain pydantic models with no I/O, shared by the pure state machine (``machine.py``), the
Redis store (``store.py``) and the public API (``runtime.py``). Everything is JSON: a run's
state is one JSON document in Redis, so nothing here holds a datetime or a UUID object
that a persistence layer would have to special-case.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tta_agent_coordination.models import AgentId

__all__ = [
    "RUN_ID_PATTERN",
    "Decision",
    "Plan",
    "Reflection",
    "RunContext",
    "RunEvent",
    "RunMode",
    "RunResult",
    "RunStatus",
    "Step",
    "StepError",
    "StepRecord",
    "StepResult",
    "Task",
    "check_run_id",
]

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
"""Run ids become part of Redis keys and message ids: no ``:``, braces or spaces."""


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` when it is a valid run id.

    Raises:
        ValueError: it is not 1-100 letters, digits, ``_ . -`` starting with a letter or
            digit.
    """
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ValueError(
            f"invalid run id {run_id!r}: use 1-100 letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return run_id


class Task(BaseModel):
    """What a caller asks for: a payload for ``agent``, the single-shot (legacy) target.

    Attributes:
        agent: the agent that handles the whole task in one request on the legacy and
            single-shot paths (a type-wide id: any instance).
        payload: the request payload (JSON).
        session_id: the session the task belongs to; the A/B split is stable per session.
        description: free text a planner may read (an LLM prompt in a host app).
        timeout_s: how long the single-shot request may take.
    """

    model_config = ConfigDict(frozen=True)

    agent: AgentId
    payload: dict[str, Any] = Field(default_factory=dict)
    session_id: str = "default"
    description: str = ""
    timeout_s: float = Field(default=30.0, gt=0)


class Step(BaseModel):
    """One step of a plan: a request ``payload`` for ``agent``, answered within ``timeout_s``."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=100)
    agent: AgentId
    payload: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float = Field(default=30.0, gt=0)


class Plan(BaseModel):
    """An ordered list of steps (at least one); step ids are unique within a plan."""

    model_config = ConfigDict(frozen=True)

    steps: tuple[Step, ...] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _unique_ids(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        ids = [step.id for step in steps]
        if len(set(ids)) != len(ids):
            raise ValueError(f"step ids must be unique within a plan, got {ids}")
        return steps


class StepError(BaseModel):
    """Why a step attempt failed.

    Attributes:
        kind: ``timeout`` (no reply in time), ``permanent`` (the handler refused it for
            good: retrying cannot help), ``transient`` (the handler failed after its own
            queue's retries) or ``not_delivered``.
        type: the remote exception's class name, when there was one.
        message: a human-readable explanation.
    """

    model_config = ConfigDict(frozen=True)

    kind: str
    type: str = ""
    message: str = ""

    @property
    def retryable(self) -> bool:
        """Whether another attempt may succeed (anything but a permanent failure)."""
        return self.kind != "permanent"


class StepResult(BaseModel):
    """The outcome of one request to an agent: its reply payload, or its error.

    ``execute_legacy`` returns one; every step attempt of a run records one.
    """

    model_config = ConfigDict(frozen=True)

    ok: bool
    output: dict[str, Any] = Field(default_factory=dict)
    error: StepError | None = None


class StepRecord(BaseModel):
    """One finished step attempt, as recorded in the run before anything else happens."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0)
    step_id: str
    agent: AgentId
    attempt: int = Field(ge=1)
    plan_version: int = Field(ge=1)
    result: StepResult

    @property
    def key(self) -> str:
        """The attempt's deterministic key (also its request's message id)."""
        return step_key_of(self.plan_version, self.index, self.attempt)


def step_key_of(plan_version: int, index: int, attempt: int) -> str:
    """The key of one step attempt within a run: ``<plan_version>:<index>:<attempt>``."""
    return f"{plan_version}:{index}:{attempt}"


class Decision(StrEnum):
    """What a reflection decides after a step attempt."""

    CONTINUE = "continue"
    """Go on with the next step (or complete after the last one)."""
    RETRY = "retry"
    """Run the same step again (within ``max_retries_per_step``)."""
    REPLAN = "replan"
    """Ask the planner for a new plan (within ``max_replans``)."""
    ABORT = "abort"
    """End the run as ``aborted``."""
    COMPLETE = "complete"
    """End the run as ``completed`` now, with this attempt's result."""


class Reflection(BaseModel):
    """A reflector's verdict on one step attempt.

    Attributes:
        decision: what to do next.
        reason: why (shown in the run's events).
        plan: with ``replan``, the new plan itself; None asks the planner for one.
    """

    model_config = ConfigDict(frozen=True)

    decision: Decision
    reason: str = ""
    plan: Plan | None = None


class RunStatus(StrEnum):
    """Where a run is: three live phases, then one of five outcomes."""

    PLANNING = "planning"
    RUNNING = "running"
    REFLECTING = "reflecting"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BUDGET_EXHAUSTED = "budget_exhausted"

    @property
    def terminal(self) -> bool:
        """Whether the run has ended (nothing runs after this)."""
        return self not in _LIVE


_LIVE = frozenset({RunStatus.PLANNING, RunStatus.RUNNING, RunStatus.REFLECTING})


class RunMode(StrEnum):
    """How a run executes its task."""

    LEGACY = "legacy"
    """The enhanced runtime is off for this session: one request, as ``execute_legacy``."""
    SINGLE_SHOT = "single_shot"
    """Enhanced, but the planning threshold says one request is enough."""
    MULTI_STEP = "multi_step"
    """Planned steps on agents, with reflection when enabled."""


class RunContext(BaseModel):
    """What a planner and a reflector see of a run (a read-only snapshot)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    task: Task
    plan: Plan | None
    plan_version: int
    records: tuple[StepRecord, ...]
    replans: int


class RunEvent(BaseModel):
    """One entry of a run's event stream.

    Attributes:
        id: the stream entry id (follow from it with ``runtime.events(run_id, after=id)``).
        kind: ``created``, ``planned``, ``replanned``, ``step_started``,
            ``step_succeeded``, ``step_failed``, ``reflected``, ``message``, or the
            terminal status (``completed``, ``aborted``, ``failed``, ``cancelled``,
            ``budget_exhausted``).
        version: the run's state version the event was written with.
        data: details of the event (JSON).
    """

    model_config = ConfigDict(frozen=True)

    id: str
    kind: str
    version: int
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        """Whether this event ends the run."""
        return self.kind in _TERMINAL_KINDS


_TERMINAL_KINDS = frozenset(status.value for status in RunStatus if status.terminal)


class RunResult(BaseModel):
    """What ``execute`` returns, and what ``status``-style readers can rebuild.

    Attributes:
        run_id: the run.
        status: its outcome (or live phase when read before it ended).
        mode: legacy, single-shot or multi-step.
        result: the final step's result (for a single-shot run, exactly what
            ``execute_legacy`` returns); None when no step finished.
        steps: every finished step attempt, in order.
        messages: the narrator's messages (conversation mode).
        reason: why the run ended as it did.
        replans: how many times it was replanned.
        plan_version: the version of its current plan.
    """

    run_id: str
    status: RunStatus
    mode: RunMode
    result: StepResult | None = None
    steps: tuple[StepRecord, ...] = ()
    messages: tuple[str, ...] = ()
    reason: str | None = None
    replans: int = 0
    plan_version: int = 0
