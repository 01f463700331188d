"""TTA's turn as a pipeline over the agents' type-wide queues: :class:`TTAPipeline`.

``await TTAPipeline(coordinator).run(session_id, player_input)`` sends the player's input
to any input processor, then the world builder, then the narrative generator (or the
steps given), each as one request (``coordinator.request``) to the agent type's queue,
and returns a :class:`PipelineResult`. See ``docs/tta-key-migration.md`` and the
migration guide for what it replaces.
"""

from tta_agents.pipeline.runner import (
    DEFAULT_SENDER,
    SESSION_HEADER,
    STEP_HEADER,
    WORKFLOW_HEADER,
    PipelineError,
    TTAPipeline,
)
from tta_agents.pipeline.steps import (
    DEFAULT_STEPS,
    DEFAULT_TIMEOUTS,
    PIPELINE_EVENT,
    PipelineResult,
    Step,
    StepKind,
    StepResult,
    WorkflowStatus,
)

__all__ = [
    "DEFAULT_SENDER",
    "DEFAULT_STEPS",
    "DEFAULT_TIMEOUTS",
    "PIPELINE_EVENT",
    "SESSION_HEADER",
    "STEP_HEADER",
    "WORKFLOW_HEADER",
    "PipelineError",
    "PipelineResult",
    "Step",
    "StepKind",
    "StepResult",
    "TTAPipeline",
    "WorkflowStatus",
]
