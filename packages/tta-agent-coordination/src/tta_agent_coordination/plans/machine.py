"""The pure run state machine: ``advance(state, event) -> Transition``, with no I/O and no clock.

Every input a run gets (a plan, a step's result, a timeout, a reflection, a cancel, the
run deadline) is an *event*; :func:`advance` returns the next state, the run events to
append to its stream and the step timeouts that may be cancelled. An event that does not
fit the state (a late or duplicate result, a timeout of an attempt that already
finished, anything after the run ended) is *ignored*: ``Transition.applied`` is False
and the state is unchanged. :func:`next_work` says what a driver must do for a state
(call the planner, send a step, call the reflector, narrate), so a driver that crashed
and restarted does exactly what is left, from the state alone.

Budgets make every run end: each step attempt consumes ``max_steps``, each retry
``max_retries_per_step``, each replan ``max_replans``; running out ends the run as
``budget_exhausted``. Nothing here remembers time: the run deadline is an event too.
"""

from __future__ import annotations

from typing import Any

from tta_agent_coordination.plans.models import (
    Decision,
    Plan,
    Reflection,
    RunMode,
    RunStatus,
    Step,
    StepRecord,
    StepResult,
    Task,
)
from tta_agent_coordination.plans.state import (
    CLOSING,
    OPENING,
    Cancelled,
    DeadlineReached,
    Event,
    Narrated,
    Planned,
    PlanningFailed,
    Policy,
    Reflected,
    ReflectionFailed,
    RunState,
    StepFinished,
    StepSent,
    Transition,
    Work,
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
    "advance",
    "new_run",
    "next_work",
    "single_step_plan",
]


# --- construction ---------------------------------------------------------------------


def single_step_plan(task: Task) -> Plan:
    """The plan of a single-shot run: the whole task as one request to ``task.agent``."""
    return Plan(
        steps=(Step(id="task", agent=task.agent, payload=task.payload, timeout_s=task.timeout_s),)
    )


def new_run(run_id: str, task: Task, mode: RunMode, policy: Policy) -> Transition:
    """The first state of a run: planning (multi-step) or its one step (single-shot, legacy).

    A single-shot or legacy run neither retries nor reflects: it is exactly one request,
    as ``execute_legacy`` makes.
    """
    if mode is RunMode.MULTI_STEP:
        state = RunState(
            run_id=run_id,
            task=task,
            mode=mode,
            policy=policy,
            status=RunStatus.PLANNING,
            plan_version=1,
        )
        return Transition(state, True, (("created", {"mode": mode.value}),))
    policy = policy.model_copy(
        update={"max_retries_per_step": 0, "reflection": False, "max_replans": 0}
    )
    state = RunState(
        run_id=run_id,
        task=task,
        mode=mode,
        policy=policy,
        status=RunStatus.PLANNING,
        plan_version=1,
    )
    planned = _install_plan(state, single_step_plan(task), "planned")
    return Transition(planned.state, True, (("created", {"mode": mode.value}), *planned.events))


# --- the transition function ----------------------------------------------------------


def _ignored(state: RunState) -> Transition:
    return Transition(state, False)


def advance(state: RunState, event: Event) -> Transition:
    """Apply ``event`` to ``state`` (pure: no I/O, no clock); see the module docstring."""
    if isinstance(event, Narrated):
        return _narrated(state, event)
    if state.status.terminal:
        return _ignored(state)
    match event:
        case Cancelled(reason=reason):
            return _finish(state, RunStatus.CANCELLED, reason, _in_flight(state))
        case DeadlineReached():
            return _finish(
                state, RunStatus.BUDGET_EXHAUSTED, "run timeout reached", _in_flight(state)
            )
        case Planned(plan=plan, plan_version=version):
            if state.status is not RunStatus.PLANNING or version != state.plan_version:
                return _ignored(state)
            kind = "planned" if state.replans == 0 else "replanned"
            return _install_plan(state, plan, kind)
        case PlanningFailed(error=error, plan_version=version):
            if state.status is not RunStatus.PLANNING or version != state.plan_version:
                return _ignored(state)
            if state.policy.planner_fallback == "single_shot" and state.replans == 0:
                return _install_plan(state, single_step_plan(state.task), "planned", fallback=error)
            return _finish(state, RunStatus.FAILED, f"planner failed: {error}")
        case StepSent(key=key):
            if state.status is not RunStatus.RUNNING or key != state.current_key or state.sent:
                return _ignored(state)
            return Transition(_bump(state, sent=True), True)
        case StepFinished(key=key, result=result):
            if state.status is not RunStatus.RUNNING or key != state.current_key:
                return _ignored(state)
            return _step_finished(state, result)
        case Reflected(key=key, reflection=reflection):
            if not _reflecting_on(state, key):
                return _ignored(state)
            return _decide(state, reflection, reflected=True)
        case ReflectionFailed(key=key, error=error):
            if not _reflecting_on(state, key):
                return _ignored(state)
            assert state.pending is not None
            fallback = _default_reflection(state.pending.result)
            return _decide(
                state,
                fallback.model_copy(
                    update={"reason": f"reflector failed ({error}); {fallback.reason}"}
                ),
                reflected=True,
            )


def _reflecting_on(state: RunState, key: str) -> bool:
    return (
        state.status is RunStatus.REFLECTING
        and state.pending is not None
        and state.pending.key == key
    )


def _bump(state: RunState, **update: Any) -> RunState:
    return state.model_copy(update=update)


def _in_flight(state: RunState) -> tuple[str, ...]:
    return (state.current_key,) if state.status is RunStatus.RUNNING else ()


def _install_plan(
    state: RunState, plan: Plan, kind: str, *, fallback: str | None = None
) -> Transition:
    data: dict[str, Any] = {
        "plan_version": state.plan_version,
        "steps": [{"id": s.id, "agent": str(s.agent)} for s in plan.steps],
    }
    if fallback is not None:
        data["fallback"] = f"planner failed ({fallback}): the task runs as one request"
    planned = _bump(state, plan=plan)
    started = _start_step(planned, 0, 1)
    return Transition(started.state, True, ((kind, data), *started.events), started.cancel_timeouts)


def _start_step(state: RunState, cursor: int, attempt: int) -> Transition:
    assert state.plan is not None
    if state.started_steps >= state.policy.max_steps:
        return _finish(
            state,
            RunStatus.BUDGET_EXHAUSTED,
            f"max_steps ({state.policy.max_steps}) step attempts started",
        )
    step = state.plan.steps[cursor]
    nxt = _bump(
        state,
        status=RunStatus.RUNNING,
        cursor=cursor,
        attempt=attempt,
        sent=False,
        started_steps=state.started_steps + 1,
        pending=None,
    )
    return Transition(
        nxt,
        True,
        (
            (
                "step_started",
                {
                    "key": nxt.current_key,
                    "step": step.id,
                    "index": cursor,
                    "attempt": attempt,
                    "agent": str(step.agent),
                },
            ),
        ),
    )


def _step_finished(state: RunState, result: StepResult) -> Transition:
    assert state.plan is not None
    step = state.plan.steps[state.cursor]
    record = StepRecord(
        index=state.cursor,
        step_id=step.id,
        agent=step.agent,
        attempt=state.attempt,
        plan_version=state.plan_version,
        result=result,
    )
    data: dict[str, Any] = {"key": record.key, "step": step.id, "attempt": state.attempt}
    if result.ok:
        event = ("step_succeeded", data)
    else:
        assert result.error is not None
        event = ("step_failed", {**data, "error": result.error.model_dump()})
    recorded = _bump(
        state,
        status=RunStatus.REFLECTING,
        records=(*state.records, record),
        pending=record,
    )
    if state.policy.reflection:
        return Transition(recorded, True, (event,), (record.key,))
    decided = _decide(recorded, _default_reflection(result), reflected=False)
    return Transition(
        decided.state, True, (event, *decided.events), (record.key, *decided.cancel_timeouts)
    )


def _default_reflection(result: StepResult) -> Reflection:
    """The rule without a reflector: continue on success, retry a retryable failure."""
    if result.ok:
        return Reflection(decision=Decision.CONTINUE, reason="step succeeded")
    assert result.error is not None
    if result.error.retryable:
        return Reflection(decision=Decision.RETRY, reason=f"step failed ({result.error.kind})")
    # A permanent failure cannot succeed on retry: the run fails (see _decide).
    return Reflection(decision=Decision.ABORT, reason=f"permanent failure: {result.error.message}")


def _decide(state: RunState, reflection: Reflection, *, reflected: bool) -> Transition:
    record = state.pending
    assert record is not None
    assert state.plan is not None
    events: tuple[tuple[str, dict[str, Any]], ...] = ()
    if reflected:
        events = (
            (
                "reflected",
                {
                    "key": record.key,
                    "decision": reflection.decision.value,
                    "reason": reflection.reason,
                },
            ),
        )
    outcome = _apply_decision(state, record, reflection, reflected)
    return Transition(outcome.state, True, (*events, *outcome.events), outcome.cancel_timeouts)


def _apply_decision(
    state: RunState, record: StepRecord, reflection: Reflection, reflected: bool
) -> Transition:
    assert state.plan is not None
    policy = state.policy
    match reflection.decision:
        case Decision.CONTINUE:
            if state.cursor + 1 < len(state.plan.steps):
                return _start_step(state, state.cursor + 1, 1)
            return _finish(state, RunStatus.COMPLETED, "every step ran", result=record.result)
        case Decision.COMPLETE:
            return _finish(
                state, RunStatus.COMPLETED, reflection.reason or "complete", result=record.result
            )
        case Decision.RETRY:
            if record.attempt > policy.max_retries_per_step:
                return _finish(
                    state,
                    RunStatus.BUDGET_EXHAUSTED,
                    f"step {record.step_id!r} failed {record.attempt} times "
                    f"(max_retries_per_step={policy.max_retries_per_step})",
                    result=record.result,
                )
            return _start_step(state, state.cursor, record.attempt + 1)
        case Decision.ABORT:
            if not reflected and not record.result.ok:
                return _finish(state, RunStatus.FAILED, reflection.reason, result=record.result)
            return _finish(
                state, RunStatus.ABORTED, reflection.reason or "aborted", result=record.result
            )
        case Decision.REPLAN:
            if state.replans >= policy.max_replans:
                return _finish(
                    state,
                    RunStatus.BUDGET_EXHAUSTED,
                    f"max_replans ({policy.max_replans}) reached",
                    result=record.result,
                )
            replanning = _bump(
                state,
                status=RunStatus.PLANNING,
                plan_version=state.plan_version + 1,
                replans=state.replans + 1,
                pending=None,
            )
            if reflection.plan is not None:
                return _install_plan(replanning, reflection.plan, "replanned")
            return Transition(replanning, True)


def _finish(
    state: RunState,
    status: RunStatus,
    reason: str,
    cancel: tuple[str, ...] = (),
    *,
    result: StepResult | None = None,
) -> Transition:
    final = result if result is not None else (state.records[-1].result if state.records else None)
    ended = _bump(state, status=status, reason=reason, pending=None, result=final)
    return Transition(ended, True, ((status.value, {"reason": reason}),), cancel)


def _narrated(state: RunState, event: Narrated) -> Transition:
    if event.anchor in state.narrated:
        return _ignored(state)
    nxt = _bump(
        state,
        narrated=(*state.narrated, event.anchor),
        messages=state.messages if event.text is None else (*state.messages, event.text),
    )
    events: tuple[tuple[str, dict[str, Any]], ...] = ()
    if event.text is not None:
        events = (("message", {"anchor": event.anchor, "text": event.text}),)
    return Transition(nxt, True, events)


# --- what a driver does next ----------------------------------------------------------


def next_work(state: RunState) -> Work | None:
    """What must happen next for ``state`` (None: wait for an event, or the run ended).

    Narration comes first so that messages keep the order of what they tell.
    """
    if state.policy.conversation:
        narration = _next_narration(state)
        if narration is not None:
            return narration
    match state.status:
        case RunStatus.PLANNING:
            return Work("plan", plan_version=state.plan_version)
        case RunStatus.RUNNING if not state.sent:
            return Work("send", key=state.current_key, step=state.current_step)
        case RunStatus.REFLECTING if state.pending is not None:
            return Work("reflect", key=state.pending.key, record=state.pending)
        case _:
            return None


def _next_narration(state: RunState) -> Work | None:
    if OPENING not in state.narrated:
        return Work("narrate", anchor=OPENING)
    for record in state.records:
        if record.key not in state.narrated:
            return Work("narrate", anchor=record.key, record=record)
    if state.status.terminal and CLOSING not in state.narrated:
        return Work("narrate", anchor=CLOSING)
    return None
