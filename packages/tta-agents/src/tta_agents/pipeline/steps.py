"""The pipeline's vocabulary: steps, their results, a workflow's outcome and its events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from tta_agents.types import AgentType

__all__ = [
    "DEFAULT_STEPS",
    "DEFAULT_TIMEOUTS",
    "PIPELINE_EVENT",
    "PipelineResult",
    "Step",
    "StepKind",
    "StepResult",
    "WorkflowStatus",
]

PIPELINE_EVENT = "tta.pipeline"
"""The ``event`` field of every progress event the pipeline publishes."""


class StepKind(StrEnum):
    """What a step runs: one agent's request, or several steps at once."""

    IPA = "ipa"
    WBA = "wba"
    NGA = "nga"
    PARALLEL = "parallel"

    @property
    def agent_type(self) -> str:
        """The agent type a request of this step goes to (type-wide).

        Raises:
            ValueError: a ``parallel`` step sends no request itself.
        """
        if self is StepKind.PARALLEL:
            raise ValueError("a parallel step has no agent type of its own")
        return AgentType[self.name].value


@dataclass(frozen=True)
class Step:
    """One step of a workflow, as the original ``{"type", "config", ...}`` step dicts.

    Attributes:
        kind: ``ipa``, ``wba``, ``nga`` or ``parallel``.
        config: overrides of the inputs the step otherwise takes from the context:
            ``text`` (ipa), ``world_id``/``updates`` (wba), ``prompt``/``context`` (nga).
        steps: the sub-steps of a ``parallel`` step (agent steps only).
        continue_on_error: a failure of this step does not end the workflow.
        update_context: merge the step's result (``{kind}_result``) into the context.
        timeout_s: this step's request timeout (default: the pipeline's for its agent).
    """

    kind: StepKind
    config: Mapping[str, Any] = field(default_factory=dict[str, Any])
    steps: tuple[Step, ...] = ()
    continue_on_error: bool = False
    update_context: bool = True
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind is StepKind.PARALLEL:
            if not self.steps:
                raise ValueError("a parallel step needs sub-steps")
            if any(s.kind is StepKind.PARALLEL for s in self.steps):
                raise ValueError("parallel steps do not nest")
        elif self.steps:
            raise ValueError(f"only a parallel step has sub-steps, not {self.kind.value!r}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")


DEFAULT_STEPS = (Step(StepKind.IPA), Step(StepKind.WBA), Step(StepKind.NGA))
"""Input processing, then the world, then the narrative: TTA's turn."""

DEFAULT_TIMEOUTS = (10.0, 15.0, 20.0)
"""The original per-agent timeouts in seconds: IPA, WBA, NGA."""


class WorkflowStatus(StrEnum):
    """How a workflow ended."""

    COMPLETED = "completed"
    """Every step ran; some may have failed with ``continue_on_error``."""
    FAILED = "failed"
    """A step failed without ``continue_on_error``; later steps did not run."""
    TIMED_OUT = "timed_out"
    """``workflow_timeout_s`` passed; the running request was cancelled."""
    CANCELLED = "cancelled"
    """``TTAPipeline.cancel`` stopped it; the running request was cancelled."""


class StepResult(BaseModel):
    """The outcome of one step (a parallel step lists its sub-steps' outcomes)."""

    index: int
    kind: StepKind
    ok: bool
    output: dict[str, Any] | None = None
    """The agent's reply payload."""
    error: str | None = None
    duration_s: float = 0.0
    parallel: list[StepResult] = Field(default_factory=list["StepResult"])


class PipelineResult(BaseModel):
    """What :meth:`TTAPipeline.run` returns."""

    workflow_id: str
    session_id: str
    status: WorkflowStatus
    context: dict[str, Any]
    """The final context: the initial keys plus each step's ``{kind}_result``."""
    steps: list[StepResult] = Field(default_factory=list[StepResult])
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the workflow completed and every step succeeded."""
        return self.status is WorkflowStatus.COMPLETED and all(s.ok for s in self.steps)
