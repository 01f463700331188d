"""TTAPipeline with real workers of the three agent types, on FakeRedis and real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tta_agent_coordination import MessageContext, PermanentError, RedisMessageCoordinator
from tta_agent_coordination.models import AgentId, MessageType
from tta_agents.contracts import IPARequest, NGARequest, WBARequest
from tta_agents.pipeline import (
    PIPELINE_EVENT,
    SESSION_HEADER,
    STEP_HEADER,
    WORKFLOW_HEADER,
    PipelineError,
    Step,
    StepKind,
    TTAPipeline,
    WorkflowStatus,
)

OBSERVER = AgentId("observer", "o1")


@dataclass
class Agents:
    """Three live workers; what each handled, and knobs to make them fail or stall."""

    calls: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)
    stall: dict[str, float] = field(default_factory=dict)
    started: dict[str, asyncio.Event] = field(default_factory=dict)
    barrier: asyncio.Event | None = None
    in_flight: int = 0
    most_in_flight: int = 0

    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]


async def _handle(agents: Agents, name: str, ctx: MessageContext[Any], result: dict[str, Any]):
    agents.calls.append((name, dict(ctx.payload), dict(ctx.message.headers)))
    agents.started.setdefault(name, asyncio.Event()).set()
    if name in agents.fail:
        raise PermanentError(f"{name} refuses")
    if agents.barrier is not None and name in ("wba", "nga"):
        # Parallel steps: each waits until both have started.
        if all(n in agents.started for n in ("wba", "nga")):
            agents.barrier.set()
        await asyncio.wait_for(agents.barrier.wait(), 5)
    agents.in_flight += 1
    agents.most_in_flight = max(agents.most_in_flight, agents.in_flight)
    try:
        if name in agents.stall:
            await asyncio.sleep(agents.stall[name])
    finally:
        agents.in_flight -= 1
    return result


@pytest.fixture
async def agents(coordination_worker_factory: Callable[..., Any]) -> AsyncIterator[Agents]:
    state = Agents()
    ipa = coordination_worker_factory("input_processor:i1", grace_period=0.2)
    wba = coordination_worker_factory("world_builder:w1", grace_period=0.2)
    nga = coordination_worker_factory("narrative_generator:n1", grace_period=0.2)

    @ipa.on_request()
    async def process_input(ctx: MessageContext[Any]) -> dict[str, Any]:
        text = ctx.payload["text"]
        normalized = {"normalized_text": text.strip().lower(), "routing": {"intent": "explore"}}
        return await _handle(state, "ipa", ctx, normalized)

    @wba.on_request()
    async def process_world(ctx: MessageContext[Any]) -> dict[str, Any]:
        world = {
            "world_id": ctx.payload["world_id"],
            "world_state": {"updates": ctx.payload["updates"]},
            "cached": False,
        }
        return await _handle(state, "wba", ctx, world)

    @nga.on_request()
    async def generate(ctx: MessageContext[Any]) -> dict[str, Any]:
        story = {
            "story": f"The door creaks: {ctx.payload['prompt']}",
            "context_used": sorted(ctx.payload["context"]),
        }
        return await _handle(state, "nga", ctx, story)

    async with ipa, wba, nga:
        yield state


async def test_a_turn_runs_each_agent_once_in_order(
    coordination_coordinator: RedisMessageCoordinator, agents: Agents
) -> None:
    pipeline = TTAPipeline(coordination_coordinator, progress_events=False)
    result = await pipeline.run(
        "s1",
        "  Open the Door ",
        context={"world_updates": {"door": "open"}, "narrative_prompt": "describe the hall"},
        workflow_id="wf-1",
    )
    assert result.ok, result
    assert result.status is WorkflowStatus.COMPLETED
    assert agents.names() == ["ipa", "wba", "nga"]  # each once: no second run "for audit"
    (_, ipa_in, ipa_headers), (_, wba_in, _), (_, nga_in, _) = agents.calls
    assert ipa_in == {"text": "  Open the Door "}
    assert ipa_headers[WORKFLOW_HEADER] == "wf-1"
    assert ipa_headers[SESSION_HEADER] == "s1"
    assert ipa_headers[STEP_HEADER] == "0:ipa"
    assert wba_in == {"world_id": "s1", "updates": {"door": "open"}}
    assert nga_in["prompt"] == "describe the hall"
    assert {"ipa_result", "wba_result", "player_input", "session_id"} <= set(nga_in["context"])
    context = result.context
    assert context["ipa_result"]["normalized_text"] == "open the door"
    assert context["wba_result"]["world_state"] == {"updates": {"door": "open"}}
    assert context["nga_result"]["story"] == "The door creaks: describe the hall"
    assert [s.kind for s in result.steps] == [StepKind.IPA, StepKind.WBA, StepKind.NGA]
    assert pipeline.running == []


async def test_a_turn_without_world_updates_sends_each_agent_its_contract(
    coordination_coordinator: RedisMessageCoordinator, agents: Agents
) -> None:
    # Regression: the WBA payload had "updates": None, which WBARequest (what wba_worker
    # validates) refuses, so a plain turn failed at the world builder.
    result = await TTAPipeline(coordination_coordinator, progress_events=False).run("s9", "look")
    assert result.ok, result
    (_, ipa_in, _), (_, wba_in, _), (_, nga_in, _) = agents.calls
    assert IPARequest.model_validate(ipa_in).text == "look"
    assert WBARequest.model_validate(wba_in).updates == {}
    assert NGARequest.model_validate(nga_in).prompt == ""


async def test_progress_is_published_as_events(
    coordination_coordinator: RedisMessageCoordinator, agents: Agents
) -> None:
    await coordination_coordinator.subscribe(OBSERVER, [MessageType.EVENT])
    pipeline = TTAPipeline(coordination_coordinator)
    result = await pipeline.run("s2", "look", steps=[Step(StepKind.IPA)], workflow_id="wf-2")
    assert result.ok
    kinds: list[str] = []
    while (received := await coordination_coordinator.receive(OBSERVER)) is not None:
        payload = received.message.payload
        assert payload["event"] == PIPELINE_EVENT
        assert payload["workflow_id"] == "wf-2"
        assert received.message.headers[SESSION_HEADER] == "s2"
        kinds.append(payload["kind"] + (f":{payload['step']}" if "step" in payload else ""))
        await coordination_coordinator.ack(OBSERVER, received.token)
    assert kinds == [
        "workflow_started",
        "step_started:0:ipa",
        "step_completed:0:ipa",
        "workflow_completed",
    ]


async def test_a_failed_step_ends_the_workflow_unless_it_may_continue(
    coordination_coordinator: RedisMessageCoordinator, agents: Agents
) -> None:
    agents.fail.add("wba")
    pipeline = TTAPipeline(coordination_coordinator, progress_events=False)
    failed = await pipeline.run("s3", "go north")
    assert failed.status is WorkflowStatus.FAILED
    assert "wba" in (failed.error or "")
    assert "refuses" in (failed.error or "")
    assert agents.names() == ["ipa", "wba"]
    assert "wba_result" not in failed.context

    agents.calls.clear()
    steps = [Step(StepKind.IPA), Step(StepKind.WBA, continue_on_error=True), Step(StepKind.NGA)]
    went_on = await pipeline.run("s3", "go north", steps=steps)
    assert went_on.status is WorkflowStatus.COMPLETED
    assert not went_on.ok  # completed, with a failed step
    assert [s.ok for s in went_on.steps] == [True, False, True]
    assert agents.names() == ["ipa", "wba", "nga"]


async def test_a_step_timeout_fails_the_step(
    coordination_coordinator: RedisMessageCoordinator, agents: Agents
) -> None:
    agents.stall["wba"] = 1.5
    pipeline = TTAPipeline(coordination_coordinator, timeouts=(10, 0.3, 20), progress_events=False)
    result = await pipeline.run("s4", "wait")
    assert result.status is WorkflowStatus.FAILED
    assert result.steps[1].error is not None
    assert result.steps[1].error.startswith("RequestTimeoutError")
    assert agents.names() == ["ipa", "wba"]


async def test_the_workflow_timeout_abandons_the_running_request(
    coordination_coordinator: RedisMessageCoordinator, agents: Agents
) -> None:
    agents.stall["wba"] = 3.0
    pipeline = TTAPipeline(coordination_coordinator, workflow_timeout_s=0.5, progress_events=False)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await pipeline.run("s5", "wait")
    assert loop.time() - started < 2.5  # not the WBA's 3 s, nor its 15 s step timeout
    assert result.status is WorkflowStatus.TIMED_OUT
    assert [(s.kind, s.ok) for s in result.steps] == [(StepKind.IPA, True), (StepKind.WBA, False)]
    assert "timed out" in (result.steps[1].error or "")
    assert "nga" not in agents.names()


async def test_cancel_stops_the_running_request_and_later_steps(
    coordination_coordinator: RedisMessageCoordinator, agents: Agents
) -> None:
    agents.stall["wba"] = 3.0
    pipeline = TTAPipeline(coordination_coordinator, progress_events=False)
    run = asyncio.create_task(pipeline.run("s6", "wait", workflow_id="wf-6"))
    await asyncio.wait_for(agents.started.setdefault("wba", asyncio.Event()).wait(), 10)
    assert pipeline.running == ["wf-6"]
    assert await pipeline.cancel("wf-6")
    assert run.done()  # cancel returns once the workflow has stopped
    result = run.result()
    assert result.status is WorkflowStatus.CANCELLED
    assert [(s.kind, s.ok) for s in result.steps] == [(StepKind.IPA, True), (StepKind.WBA, False)]
    assert not await pipeline.cancel("wf-6")
    assert not await pipeline.cancel("unknown")
    assert pipeline.running == []
    assert "nga" not in agents.names()


async def test_cancelling_the_caller_propagates(
    coordination_coordinator: RedisMessageCoordinator, agents: Agents
) -> None:
    agents.stall["ipa"] = 3.0
    pipeline = TTAPipeline(coordination_coordinator, progress_events=False)
    run = asyncio.create_task(pipeline.run("s7", "wait", workflow_id="wf-7"))
    await asyncio.wait_for(agents.started.setdefault("ipa", asyncio.Event()).wait(), 10)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert pipeline.running == []


async def test_parallel_steps_run_at_once(
    coordination_coordinator: RedisMessageCoordinator, agents: Agents
) -> None:
    agents.barrier = asyncio.Event()  # WBA and NGA each wait until both have started
    pipeline = TTAPipeline(coordination_coordinator, progress_events=False)
    steps = [
        Step(StepKind.IPA),
        Step(StepKind.PARALLEL, steps=(Step(StepKind.WBA), Step(StepKind.NGA))),
    ]
    result = await pipeline.run("s8", "look around", steps=steps)
    assert result.ok, result
    parallel = result.steps[1]
    assert [s.kind for s in parallel.parallel] == [StepKind.WBA, StepKind.NGA]
    assert {"wba_result", "nga_result", "parallel_results"} <= set(result.context)
    assert len(result.context["parallel_results"]) == 2


async def test_a_failing_parallel_step_reports_which_sub_step_failed(
    coordination_coordinator: RedisMessageCoordinator, agents: Agents
) -> None:
    agents.fail.add("nga")
    pipeline = TTAPipeline(coordination_coordinator, progress_events=False)
    steps = [Step(StepKind.PARALLEL, steps=(Step(StepKind.WBA), Step(StepKind.NGA)))]
    result = await pipeline.run("s9", "x", steps=steps)
    assert result.status is WorkflowStatus.FAILED
    assert (result.steps[0].error or "").startswith("nga:")
    assert result.context["parallel_results"][1] is None


async def test_misuse_raises_pipeline_error(
    coordination_coordinator: RedisMessageCoordinator, agents: Agents
) -> None:
    with pytest.raises(PipelineError, match="timeouts"):
        TTAPipeline(coordination_coordinator, timeouts=(1, 2))
    with pytest.raises(PipelineError, match="workflow_timeout_s"):
        TTAPipeline(coordination_coordinator, workflow_timeout_s=0)
    with pytest.raises(PipelineError, match="max_concurrent"):
        TTAPipeline(coordination_coordinator, max_concurrent=0)
    pipeline = TTAPipeline(coordination_coordinator, progress_events=False)
    with pytest.raises(PipelineError, match="at least one step"):
        await pipeline.run("s", "x", steps=[])
    with pytest.raises(PipelineError, match="session_id"):
        await pipeline.run("", "x")
    agents.stall["ipa"] = 1.0
    first = asyncio.create_task(pipeline.run("s", "x", workflow_id="dup"))
    await asyncio.wait_for(agents.started.setdefault("ipa", asyncio.Event()).wait(), 10)
    with pytest.raises(PipelineError, match="running already"):
        await pipeline.run("s", "x", workflow_id="dup")
    await pipeline.cancel("dup")
    assert first.result().status is WorkflowStatus.CANCELLED
    with pytest.raises(ValueError, match="sub-steps"):
        Step(StepKind.PARALLEL)
    with pytest.raises(ValueError, match="do not nest"):
        Step(StepKind.PARALLEL, steps=(Step(StepKind.PARALLEL, steps=(Step(StepKind.IPA),)),))
    with pytest.raises(ValueError, match="only a parallel step"):
        Step(StepKind.IPA, steps=(Step(StepKind.WBA),))
    with pytest.raises(ValueError, match="timeout_s"):
        Step(StepKind.IPA, timeout_s=0)
    with pytest.raises(ValueError, match="no agent type"):
        _ = StepKind.PARALLEL.agent_type


@pytest.mark.parametrize("slots", [1, 2])
async def test_max_concurrent_bounds_the_workflows_running_at_once(
    coordination_coordinator: RedisMessageCoordinator, agents: Agents, slots: int
) -> None:
    agents.stall["ipa"] = 0.6  # long enough for both to overlap when allowed
    pipeline = TTAPipeline(coordination_coordinator, max_concurrent=slots, progress_events=False)
    steps = [Step(StepKind.IPA)]
    results = await asyncio.gather(
        pipeline.run("a", "x", steps=steps), pipeline.run("b", "y", steps=steps)
    )
    assert all(r.ok for r in results)
    assert agents.most_in_flight == slots


async def test_a_context_that_is_not_json_fails_only_the_step_that_sends_it(
    coordination_coordinator: RedisMessageCoordinator, agents: Agents
) -> None:
    pipeline = TTAPipeline(coordination_coordinator, progress_events=False)
    result = await pipeline.run("s10", "x", context={"handle": object()})
    assert result.status is WorkflowStatus.FAILED
    assert [(s.kind, s.ok) for s in result.steps] == [
        (StepKind.IPA, True),
        (StepKind.WBA, True),
        (StepKind.NGA, False),  # the NGA request carries the whole context
    ]
    assert (result.steps[2].error or "").startswith("MessageValidationError")
    assert agents.names() == ["ipa", "wba"]
