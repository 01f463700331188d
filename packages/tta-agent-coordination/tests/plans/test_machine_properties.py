"""Hypothesis over ``advance``: every run ends within its budget, nothing runs after it
ends, and every step attempt is recorded once, whatever the planner, reflector, agents
and stray events (late, duplicate, stale) do."""

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    Cancelled,
    DeadlineReached,
    Event,
    Narrated,
    Planned,
    PlanningFailed,
    Reflected,
    ReflectionFailed,
    StepFinished,
    StepSent,
    new_run,
)

TASK = Task(agent=AgentId("solo"))

results = st.one_of(
    st.builds(lambda v: StepResult(ok=True, output={"v": v}), st.integers(0, 3)),
    st.sampled_from(["transient", "timeout", "permanent", "not_delivered"]).map(
        lambda kind: StepResult(ok=False, error=StepError(kind=kind))
    ),
)
plans = st.integers(1, 4).map(
    lambda n: Plan(steps=tuple(Step(id=f"s{i}", agent=AgentId("a")) for i in range(n)))
)
reflections = st.builds(
    Reflection, decision=st.sampled_from(list(Decision)), plan=st.none() | plans
)
policies = st.builds(
    Policy,
    max_steps=st.integers(1, 8),
    max_retries_per_step=st.integers(0, 3),
    max_replans=st.integers(0, 3),
    reflection=st.booleans(),
    conversation=st.booleans(),
    planner_fallback=st.sampled_from(["single_shot", "fail"]),
)
stray_keys = st.builds(
    lambda v, i, a: f"{v}:{i}:{a}", st.integers(0, 4), st.integers(0, 4), st.integers(0, 4)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    policy=policies,
    mode=st.sampled_from(list(RunMode)),
)
def test_every_run_ends_within_its_budget_and_records_each_attempt_once(data, policy, mode):
    first = new_run("r", TASK, mode, policy)
    state = first.state
    kinds: list[str] = [kind for kind, _ in first.events]
    started = kinds.count("step_started")
    strays = 0
    delivered: dict[str, StepResult] = {}  # the genuine result sent for each attempt
    # Every applied transition either plans, sends, finishes or judges a step attempt
    # (narration aside): the budgets bound how many there can be.
    bound = 4 * policy.max_steps + 2 * (policy.max_replans + 1) + 4
    progress = 0
    for _turn in range(2 * bound + 60):
        if strays < 20 and data.draw(st.integers(0, 9), label="stray?") == 0:
            strays += 1
            stray: Event = data.draw(
                st.one_of(
                    st.builds(StepFinished, stray_keys, results),
                    st.builds(StepSent, stray_keys),
                    st.builds(Reflected, stray_keys, reflections),
                    st.builds(Planned, plans, st.integers(0, 5)),
                    st.just(Cancelled()),
                    st.just(DeadlineReached()),
                ),
                label="stray",
            )
            event = stray
        else:
            work = next_work(state)
            if work is None:
                if state.status.terminal:
                    break
                assert state.status is RunStatus.RUNNING
                assert state.sent
                genuine = data.draw(results, label="result")
                delivered[state.current_key] = genuine
                event = StepFinished(state.current_key, genuine)
            elif work.kind == "narrate":
                event = Narrated(work.anchor, data.draw(st.none() | st.just("msg")))
            elif work.kind == "plan":
                event = data.draw(
                    st.builds(Planned, plans, st.just(work.plan_version))
                    | st.just(PlanningFailed("boom", work.plan_version)),
                    label="planner",
                )
            elif work.kind == "send":
                event = StepSent(work.key)
            else:
                assert work.kind == "reflect"
                event = data.draw(
                    st.builds(Reflected, st.just(work.key), reflections)
                    | st.just(ReflectionFailed(work.key, "boom")),
                    label="reflector",
                )
        before = state
        transition = advance(state, event)
        if not transition.applied:
            assert transition.state is before
            continue
        state = transition.state
        new_kinds = [kind for kind, _ in transition.events]
        kinds += new_kinds
        if before.status.terminal:
            # Nothing runs after the end: only the narration of what happened.
            assert isinstance(event, Narrated)
            assert set(new_kinds) <= {"message"}
            assert state.status is before.status
        if not isinstance(event, Narrated):
            progress += 1
        started += new_kinds.count("step_started")
    assert state.status.terminal, "the run did not end"
    assert next_work(state) is None
    assert progress <= bound
    assert started <= policy.max_steps
    assert state.started_steps == started
    assert state.replans <= policy.max_replans
    keys = [record.key for record in state.records]
    assert len(keys) == len(set(keys)), "an attempt was recorded twice"
    for record in state.records:
        assert delivered.get(record.key) == record.result, "a stray result was recorded"
    finished = kinds.count("step_succeeded") + kinds.count("step_failed")
    assert finished == len(state.records)
    attempts = Counter((r.plan_version, r.index) for r in state.records)
    assert max(attempts.values(), default=0) <= policy.max_retries_per_step + 1 or (
        mode is not RunMode.MULTI_STEP
    )
    terminal_events = [k for k in kinds if k == state.status.value]
    assert len(terminal_events) == 1
    after_end = kinds[kinds.index(state.status.value) + 1 :]
    assert all(kind == "message" for kind in after_end)
