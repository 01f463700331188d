"""The pure run state machine: transitions, budgets, ignored events (no Redis)."""

import pytest

from tta_agent_coordination.models import AgentId
from tta_agent_coordination.plans import (
    Decision,
    Plan,
    Policy,
    Reflection,
    RunMode,
    RunStatus,
    Step,
    StepError,
    StepResult,
    Task,
    advance,
    next_work,
)
from tta_agent_coordination.plans.machine import (
    CLOSING,
    OPENING,
    Cancelled,
    DeadlineReached,
    Narrated,
    Planned,
    PlanningFailed,
    Reflected,
    ReflectionFailed,
    RunState,
    StepFinished,
    StepSent,
    new_run,
)

TASK = Task(agent=AgentId("solo"), payload={"q": 1})
PLAN = Plan(steps=(Step(id="a", agent=AgentId("x")), Step(id="b", agent=AgentId("y"))))
OK = StepResult(ok=True, output={"v": 1})
TRANSIENT = StepResult(ok=False, error=StepError(kind="transient", message="flaky"))
PERMANENT = StepResult(ok=False, error=StepError(kind="permanent", message="no"))


def planned(policy: Policy | None = None, plan: Plan = PLAN) -> RunState:
    state = new_run("r1", TASK, RunMode.MULTI_STEP, policy or Policy()).state
    assert state.status is RunStatus.PLANNING
    return advance(state, Planned(plan, 1)).state


def test_single_shot_run_starts_with_the_task_as_its_one_step():
    t = new_run("r1", TASK, RunMode.SINGLE_SHOT, Policy(max_retries_per_step=5, reflection=True))
    state = t.state
    assert state.status is RunStatus.RUNNING
    assert state.plan is not None
    assert [s.agent for s in state.plan.steps] == [TASK.agent]
    assert state.policy.max_retries_per_step == 0
    assert not state.policy.reflection
    assert [k for k, _ in t.events] == ["created", "planned", "step_started"]
    work = next_work(state)
    assert work is not None
    assert work.kind == "send"
    assert work.key == "1:0:1"


def test_steps_run_in_order_and_the_last_result_completes_the_run():
    state = planned()
    state = advance(state, StepSent("1:0:1")).state
    assert next_work(state) is None
    t = advance(state, StepFinished("1:0:1", OK))
    assert t.cancel_timeouts == ("1:0:1",)
    state = t.state
    assert state.current_key == "1:1:1"
    final = StepResult(ok=True, output={"v": 2})
    state = advance(state, StepFinished("1:1:1", final)).state
    assert state.status is RunStatus.COMPLETED
    assert state.result == final
    assert [r.key for r in state.records] == ["1:0:1", "1:1:1"]


def test_a_late_or_duplicate_result_changes_nothing():
    state = advance(planned(), StepFinished("1:0:1", OK)).state
    for stale in ("1:0:1", "1:0:2", "2:1:1", "1:1:2"):
        t = advance(state, StepFinished(stale, TRANSIENT))
        assert not t.applied
        assert t.state is state
    assert not advance(state, StepSent("1:0:1")).applied


def test_a_transient_failure_is_retried_within_its_budget_then_the_run_is_exhausted():
    state = planned(Policy(max_retries_per_step=1))
    state = advance(state, StepFinished("1:0:1", TRANSIENT)).state
    assert state.current_key == "1:0:2"
    state = advance(state, StepFinished("1:0:2", TRANSIENT)).state
    assert state.status is RunStatus.BUDGET_EXHAUSTED
    assert "max_retries_per_step=1" in (state.reason or "")
    assert state.result == TRANSIENT


def test_a_permanent_failure_without_reflection_fails_the_run():
    state = advance(planned(), StepFinished("1:0:1", PERMANENT)).state
    assert state.status is RunStatus.FAILED
    assert state.result == PERMANENT


def test_max_steps_ends_the_run_before_another_attempt_starts():
    state = planned(Policy(max_steps=2, max_retries_per_step=5))
    state = advance(state, StepFinished("1:0:1", TRANSIENT)).state
    t = advance(state, StepFinished("1:0:2", TRANSIENT))
    assert t.state.status is RunStatus.BUDGET_EXHAUSTED
    assert t.state.started_steps == 2


def test_reflection_decides_after_every_attempt():
    state = planned(Policy(reflection=True))
    state = advance(state, StepFinished("1:0:1", OK)).state
    assert state.status is RunStatus.REFLECTING
    work = next_work(state)
    assert work is not None
    assert work.kind == "reflect"
    assert not advance(state, Reflected("1:0:9", Reflection(decision=Decision.ABORT))).applied
    t = advance(state, Reflected("1:0:1", Reflection(decision=Decision.COMPLETE, reason="enough")))
    assert t.state.status is RunStatus.COMPLETED
    assert [k for k, _ in t.events] == ["reflected", "completed"]


def test_abort_from_the_reflector_aborts():
    state = advance(planned(Policy(reflection=True)), StepFinished("1:0:1", OK)).state
    t = advance(state, Reflected("1:0:1", Reflection(decision=Decision.ABORT, reason="bad")))
    assert t.state.status is RunStatus.ABORTED
    assert t.state.reason == "bad"


def test_replan_asks_the_planner_again_with_a_new_plan_version_within_its_budget():
    state = advance(planned(Policy(reflection=True, max_replans=1)), StepFinished("1:0:1", OK))
    state = advance(state.state, Reflected("1:0:1", Reflection(decision=Decision.REPLAN))).state
    assert state.status is RunStatus.PLANNING
    assert state.plan_version == 2
    assert not advance(state, Planned(PLAN, 1)).applied  # the old plan's answer
    t = advance(state, Planned(PLAN, 2))
    assert t.events[0][0] == "replanned"
    state = advance(t.state, StepFinished("2:0:1", OK)).state
    t = advance(state, Reflected("2:0:1", Reflection(decision=Decision.REPLAN)))
    assert t.state.status is RunStatus.BUDGET_EXHAUSTED


def test_a_replan_may_carry_its_plan():
    state = advance(planned(Policy(reflection=True)), StepFinished("1:0:1", OK)).state
    new_plan = Plan(steps=(Step(id="z", agent=AgentId("z")),))
    t = advance(state, Reflected("1:0:1", Reflection(decision=Decision.REPLAN, plan=new_plan)))
    assert t.state.status is RunStatus.RUNNING
    assert t.state.plan == new_plan
    assert t.state.current_key == "2:0:1"


def test_a_failed_reflector_falls_back_to_the_default_rule():
    state = advance(planned(Policy(reflection=True)), StepFinished("1:0:1", TRANSIENT)).state
    t = advance(state, ReflectionFailed("1:0:1", "boom"))
    assert t.state.current_key == "1:0:2"
    assert "reflector failed (boom)" in t.events[0][1]["reason"]


@pytest.mark.parametrize(
    ("fallback", "status"), [("single_shot", RunStatus.RUNNING), ("fail", RunStatus.FAILED)]
)
def test_a_failed_planner_falls_back_as_configured(fallback, status):
    state = new_run("r1", TASK, RunMode.MULTI_STEP, Policy(planner_fallback=fallback)).state
    t = advance(state, PlanningFailed("hung", 1))
    assert t.state.status is status
    if status is RunStatus.RUNNING:
        assert t.state.plan is not None
        assert t.state.plan.steps[0].agent == TASK.agent
        assert "fallback" in t.events[0][1]


def test_nothing_applies_after_cancel_except_narration():
    state = advance(planned(), StepSent("1:0:1")).state
    t = advance(state, Cancelled("user"))
    assert t.state.status is RunStatus.CANCELLED
    assert t.cancel_timeouts == ("1:0:1",)
    ended = t.state
    for event in (StepFinished("1:0:1", OK), DeadlineReached(), Cancelled(), Planned(PLAN, 1)):
        assert not advance(ended, event).applied
    assert next_work(ended) is None
    assert advance(ended, Narrated(CLOSING, "bye")).applied


def test_the_deadline_exhausts_a_live_run():
    t = advance(planned(), DeadlineReached())
    assert t.state.status is RunStatus.BUDGET_EXHAUSTED
    assert t.state.reason == "run timeout reached"


def test_conversation_narrates_opening_progress_and_closing_once_each():
    state = new_run("r1", TASK, RunMode.MULTI_STEP, Policy(conversation=True)).state
    work = next_work(state)
    assert work is not None
    assert work.anchor == OPENING
    state = advance(state, Narrated(OPENING, "hello")).state
    assert not advance(state, Narrated(OPENING, "again")).applied
    state = advance(state, Planned(Plan(steps=(PLAN.steps[0],)), 1)).state
    state = advance(state, StepFinished("1:0:1", OK)).state
    work = next_work(state)
    assert work is not None
    assert work.anchor == "1:0:1"
    state = advance(state, Narrated("1:0:1", None)).state
    work = next_work(state)
    assert work is not None
    assert work.anchor == CLOSING
    state = advance(state, Narrated(CLOSING, "done")).state
    assert state.messages == ("hello", "done")
    assert next_work(state) is None
