"""The driver's failure paths: refused and unavailable sends, messages of unknown runs,
unexpected replies, two drivers sharing many runs; and the Prometheus metrics."""

import asyncio
from typing import Any

from tta_agent_coordination import AgentId, AgentMessage, MessageType, RedisMessageCoordinator
from tta_agent_coordination.models import MessageResult, SendStatus
from tta_agent_coordination.plans import (
    InMemoryPlanMetrics,
    NoOpPlanMetrics,
    PlanRuntime,
    PrometheusPlanMetrics,
    RunStatus,
    RuntimeFlags,
    Task,
)
from tta_agent_coordination.plans.driver import KICK_KIND, step_message_id
from tta_agent_coordination.replies import build_reply

from .conftest import CHECKER, WRITER, RulePlanner, eventually, queue_drained

TASK = Task(agent=WRITER, payload={"text": "hi"}, timeout_s=5)


class FlakySends(RedisMessageCoordinator):
    """The real coordinator, except that the first sends to ``target`` fail as told."""

    def __init__(self, *args: Any, target: AgentId, outcomes: list[SendStatus], **kw: Any):
        super().__init__(*args, **kw)
        self.target = target
        self.outcomes = list(outcomes)

    async def send_message(self, sender, recipient, message, **kw) -> MessageResult:
        if recipient == self.target and self.outcomes:
            status = self.outcomes.pop(0)
            return MessageResult(
                message_id=message.message_id, delivered=False, status=status, error="injected"
            )
        return await super().send_message(sender, recipient, message, **kw)


async def drive(coordinator, planner=None, metrics=None, **flag_values):
    values = {"enhanced": True, "run_timeout_s": 20.0}
    values.update(flag_values)
    runtime = PlanRuntime(
        coordinator, planner=planner or RulePlanner(), flags=RuntimeFlags(**values), metrics=metrics
    )
    worker = runtime.worker(
        poll_interval=0.1, visibility_timeout=2.0, grace_period=0, maintenance_interval=0.2
    )
    await worker.start()
    return runtime, worker


async def test_a_refused_step_request_is_a_retryable_failure(
    coordination_redis, key_prefix, agents
):
    coordinator = FlakySends(
        coordination_redis,
        key_prefix=key_prefix,
        retry_attempts=2,
        backoff_base=0.05,
        backoff_max=0.05,
        target=WRITER,
        outcomes=[SendStatus.REFUSED],
    )
    agents.coordinator = coordinator
    await agents.start(WRITER, "w1")
    await agents.start(CHECKER, "c1")
    runtime, worker = await drive(coordinator)
    try:
        result = await runtime.execute(TASK, timeout=20)
    finally:
        await worker.stop(grace_period=0)
        await agents.stop()
        await coordinator.aclose()
    assert result.status is RunStatus.COMPLETED
    first = result.steps[0].result
    assert first.error is not None
    assert (first.error.kind, first.error.message) == ("not_delivered", "injected")
    assert [(r.step_id, r.attempt) for r in result.steps] == [
        ("draft", 1),
        ("draft", 2),
        ("check", 1),
    ]


async def test_an_unavailable_send_retries_the_drivers_message(
    coordination_redis, key_prefix, agents
):
    coordinator = FlakySends(
        coordination_redis,
        key_prefix=key_prefix,
        retry_attempts=3,
        backoff_base=0.05,
        backoff_max=0.05,
        target=WRITER,
        outcomes=[SendStatus.UNAVAILABLE],
    )
    agents.coordinator = coordinator
    await agents.start(WRITER, "w1")
    await agents.start(CHECKER, "c1")
    runtime, worker = await drive(coordinator)
    try:
        result = await runtime.execute(TASK, timeout=20)
        stats = worker.stats
    finally:
        await worker.stop(grace_period=0)
        await agents.stop()
        await coordinator.aclose()
    assert result.status is RunStatus.COMPLETED
    # The send did not happen: the same attempt was sent again, not a new one.
    assert [(r.step_id, r.attempt) for r in result.steps] == [("draft", 1), ("check", 1)]
    assert stats.retried >= 1


async def test_messages_of_unknown_runs_and_unexpected_replies_are_settled(coordinator, agents):
    runtime, worker = await drive(coordinator)
    try:
        driver = runtime.address
        kick = AgentMessage(
            sender=driver,
            recipient=driver,
            message_type=MessageType.EVENT,
            payload={"kind": KICK_KIND, "run_id": "gone"},
        )
        bad = AgentMessage(
            sender=driver,
            recipient=driver,
            message_type=MessageType.EVENT,
            payload={"kind": KICK_KIND, "run_id": "not:valid"},
        )
        request = AgentMessage(
            message_id=step_message_id("gone", "1:0:1"),
            sender=driver,
            recipient=WRITER,
            message_type=MessageType.REQUEST,
            reply_to=driver,
        )
        late = build_reply(request, AgentId("writer", "w1"), {"late": True})
        stray = AgentMessage(
            sender=AgentId("someone"),
            recipient=driver,
            message_type=MessageType.RESPONSE,
            correlation_id="not-a-step",
            payload={"x": 1},
        )
        for message in (kick, bad, late, stray):
            assert (await coordinator.send_message(message.sender, driver, message)).delivered
        await queue_drained(coordinator, driver)
        stats = await coordinator.queue_stats(driver)
        assert stats.dead == 0
        await eventually(lambda: _true(worker.stats.succeeded >= 4))
    finally:
        await worker.stop(grace_period=0)


async def _true(value: bool) -> bool:
    return value


async def test_two_drivers_share_many_runs_and_each_step_runs_once(coordinator, agents):
    await agents.start(WRITER, "w1")
    await agents.start(WRITER, "w2")
    await agents.start(CHECKER, "c1")
    metrics = InMemoryPlanMetrics()
    runtime, first = await drive(coordinator, metrics=metrics)
    second = runtime.worker(
        poll_interval=0.1, visibility_timeout=2.0, grace_period=0, maintenance_interval=0.2
    )
    await second.start()
    try:
        results = await asyncio.gather(
            *(
                runtime.execute(TASK.model_copy(update={"payload": {"text": f"t{i}"}}), timeout=30)
                for i in range(12)
            )
        )
    finally:
        await first.stop(grace_period=0)
        await second.stop(grace_period=0)
    assert all(r.status is RunStatus.COMPLETED for r in results)
    texts = sorted((name, payload["text"]) for name, payload in agents.calls)
    assert texts == sorted((s, f"t{i}") for i in range(12) for s in ("draft", "check"))
    assert first.stats.succeeded + second.stats.succeeded >= 12 * 3
    assert metrics.runs["multi_step"] == 12


def test_prometheus_metrics_count_per_mode():
    metrics = PrometheusPlanMetrics()
    metrics.run_started("legacy")
    metrics.run_started("multi_step")
    metrics.step_started("multi_step")
    metrics.step_started("multi_step")
    metrics.run_finished("multi_step", "completed", 1.5)
    registry = metrics.registry
    assert registry.get_sample_value("tta_plan_runs_total", {"mode": "legacy"}) == 1
    assert registry.get_sample_value("tta_plan_steps_total", {"mode": "multi_step"}) == 2
    assert (
        registry.get_sample_value(
            "tta_plan_run_outcomes_total", {"mode": "multi_step", "status": "completed"}
        )
        == 1
    )
    assert (
        registry.get_sample_value("tta_plan_run_duration_seconds_sum", {"mode": "multi_step"})
        == 1.5
    )
    quiet = NoOpPlanMetrics()
    quiet.run_started("legacy")
    quiet.step_started("legacy")
    quiet.run_finished("legacy", "failed", 0.1)
