"""A durable plan runtime: plan a task into steps on agents, reflect, and never lose a run.

::

    from tta_agent_coordination.plans import PlanRuntime, RuntimeFlags, Task

A task runs on the legacy single-shot path (one request, ``execute_legacy``) or, with
the enhanced runtime on, is planned into :class:`Step` s that run on agents (any
instance of a type, in any process), each judged by a reflector (continue, retry,
replan, abort, complete). A run's state lives in Redis and changes only through the
pure state machine (:mod:`~tta_agent_coordination.plans.machine`) by compare-and-set, so
a driver can be killed anywhere and another one continues; step requests have
deterministic ids and a late or duplicate reply changes nothing. With a
:class:`RunRecorder` (``PlanRuntime(..., store=...)``, e.g. Postgres) every run is also
recorded outside Redis and ``PlanRuntime.restore`` brings the unfinished ones back after
a Redis loss. See ``docs/plans.md``.
"""

from tta_agent_coordination.plans.admin import RunAdmin
from tta_agent_coordination.plans.errors import PlanError, RunNotFoundError, RunWaitTimeoutError
from tta_agent_coordination.plans.flags import (
    PlannerFallback,
    PlanningThreshold,
    RuntimeFlags,
    session_bucket,
)
from tta_agent_coordination.plans.machine import Policy, RunState, advance, next_work
from tta_agent_coordination.plans.metrics import (
    InMemoryPlanMetrics,
    NoOpPlanMetrics,
    PlanMetrics,
    PrometheusPlanMetrics,
)
from tta_agent_coordination.plans.models import (
    Decision,
    Plan,
    Reflection,
    RunContext,
    RunEvent,
    RunMode,
    RunResult,
    RunStatus,
    Step,
    StepError,
    StepRecord,
    StepResult,
    Task,
)
from tta_agent_coordination.plans.protocols import Assessment, Narrator, Planner, Reflector
from tta_agent_coordination.plans.record import RunChange, RunRecorder, run_scope
from tta_agent_coordination.plans.runtime import PlanRuntime
from tta_agent_coordination.plans.store import RunSummary

__all__ = [
    "Assessment",
    "Decision",
    "InMemoryPlanMetrics",
    "Narrator",
    "NoOpPlanMetrics",
    "Plan",
    "PlanError",
    "PlanMetrics",
    "PlanRuntime",
    "Planner",
    "PlannerFallback",
    "PlanningThreshold",
    "Policy",
    "PrometheusPlanMetrics",
    "Reflection",
    "Reflector",
    "RunAdmin",
    "RunChange",
    "RunContext",
    "RunEvent",
    "RunMode",
    "RunNotFoundError",
    "RunRecorder",
    "RunResult",
    "RunState",
    "RunStatus",
    "RunSummary",
    "RunWaitTimeoutError",
    "RuntimeFlags",
    "Step",
    "StepError",
    "StepRecord",
    "StepResult",
    "Task",
    "advance",
    "next_work",
    "run_scope",
    "session_bucket",
]
