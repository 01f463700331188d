"""The compat layer's own promises beyond the 47 original behaviours."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from tta_agents.compat import (
    AgentType,
    CircuitBreaker,
    CircuitBreakerMetricsCollector,
    CircuitBreakerState,
    CompatWarning,
    FailureType,
    MessagePriority,
    MustAwait,
    RedisAgentRegistry,
    create_agent_id,
)
from tta_agents.compat import coordinator as coordinator_module
from tta_agents.compat._core import CoreCircuitBreakerConfig

SENDER = create_agent_id(AgentType.IPA, "sender")
RECIPIENT = create_agent_id(AgentType.WBA, "i1")


class AsyncStatusAgent:
    def __init__(self, instance: str) -> None:
        self.agent_id = create_agent_id(AgentType.NGA, instance)
        self.name = f"nga-{instance}"

    async def status_snapshot(self) -> dict:
        await asyncio.sleep(0)
        return {"busy": False}


@pytest.fixture
async def registry(coordination_redis, key_prefix):
    reg = RedisAgentRegistry(coordination_redis, key_prefix, heartbeat_ttl_s=5)
    yield reg
    await reg.aclose()


async def test_a_registry_call_runs_as_a_task(registry):
    agent = AsyncStatusAgent("task")
    record = await asyncio.create_task(registry.register(agent))
    assert record.name == "nga-task"
    assert await asyncio.wait_for(registry.deregister(agent.agent_id), timeout=10) is True


async def test_a_cancelled_call_is_not_reported_as_unawaited():
    async def slow():
        await asyncio.sleep(10)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = asyncio.ensure_future(MustAwait(slow(), "slow()"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        del task
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, CompatWarning)]


async def test_an_unawaited_stop_heartbeats_warns(registry):
    registry.start_heartbeats()

    def drop() -> None:
        registry.stop_heartbeats()
        gc.collect()

    with pytest.warns(CompatWarning, match=r"stop_heartbeats\(\) was never awaited"):
        drop()
    assert registry.heartbeats_running
    await registry.stop_heartbeats()


async def test_snapshot_async_awaits_an_async_status(registry):
    await registry.register(AsyncStatusAgent("s1"))
    assert (await registry.snapshot_async())["local"] == {"nga-s1": {"busy": False}}


async def test_receive_batch_and_ack_many_through_compat(coordinator, make_message):
    for i in range(3):
        await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT, {"i": i}))
    batch = await coordinator.receive_batch(RECIPIENT, 3, visibility_timeout=0)
    assert [b.message.payload["i"] for b in batch] == [0, 1, 2]
    assert await coordinator.ack_many(RECIPIENT, [b.token for b in batch[:2]]) == [True, True]
    await coordinator.configure(backoff_base=0.25)
    assert await coordinator.nack(RECIPIENT, batch[2].token)
    assert coordinator.metrics.retry.last_backoff_seconds == pytest.approx(0.25)


async def test_a_permanent_nack_records_no_backoff(coordinator, make_message):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    got = await coordinator.receive(RECIPIENT)
    assert await coordinator.nack(RECIPIENT, got.token, FailureType.PERMANENT)
    assert coordinator.metrics.retry.last_backoff_seconds == 0.0
    assert coordinator.metrics.retry.total_permanent_failures == 1


async def test_leases_remembered_for_backoff_are_bounded(coordinator, make_message, monkeypatch):
    monkeypatch.setattr(coordinator_module, "_TRACKED_LEASES", 1)
    await coordinator.configure(backoff_base=0.5)
    for _ in range(2):
        await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    first = await coordinator.receive(RECIPIENT)
    await coordinator.receive(RECIPIENT)
    # The first lease was forgotten: its nack still works, without a backoff figure.
    assert await coordinator.nack(RECIPIENT, first.token)
    assert coordinator.metrics.retry.last_backoff_seconds == 0.0
    assert coordinator.metrics.retry.total_retries_scheduled == 1


async def test_metrics_keep_the_cores_labelled_counts(coordinator, make_message):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(RECIPIENT))
    got = await coordinator.receive(RECIPIENT)
    await coordinator.ack(RECIPIENT, got.token)
    per_queue = coordinator.metrics.per_queue
    assert per_queue[("delivered_ok", str(RECIPIENT))] == 1
    assert per_queue[("acked", str(RECIPIENT))] == 1
    coordinator.metrics.set_queue_depth("x", 3)
    coordinator.metrics.set_dead_letters("x", 2)
    assert coordinator.metrics.snapshot()["gauges"] == {
        "queue_lengths": {"x|0": 3},
        "dlq_lengths": {"x": 2},
    }


async def test_a_breaker_built_from_a_core_config(coordination_redis, key_prefix):
    config = CoreCircuitBreakerConfig(failure_threshold=1)
    breaker = CircuitBreaker(coordination_redis, "core-config", config, key_prefix)
    try:
        assert breaker.config is config
        metrics = await breaker.get_metrics()
        assert metrics["config"] == {"failure_threshold": 1, "timeout_seconds": 60.0}
        assert await breaker.is_call_permitted()
        assert breaker.state is CircuitBreakerState.CLOSED
    finally:
        await breaker.aclose()


async def test_an_open_breaker_is_permitted_again_after_its_timeout(coordination_redis, key_prefix):
    from tta_agents.compat import CircuitBreakerConfig

    breaker = CircuitBreaker(
        coordination_redis,
        "timed",
        CircuitBreakerConfig(failure_threshold=1, timeout_seconds=0.1),
        key_prefix,
    )

    async def fail():
        raise OSError("down")

    try:
        with pytest.raises(OSError, match="down"):
            await breaker.call(fail)
        assert not await breaker.is_call_permitted()
        await asyncio.sleep(0.15)
        assert await breaker.is_call_permitted()
    finally:
        await breaker.aclose()


def test_the_collector_resets():
    collector = CircuitBreakerMetricsCollector(calls_permitted=2, successful_calls=2)
    collector.record_state_transition("x", CircuitBreakerState.CLOSED, CircuitBreakerState.OPEN)
    assert collector.get_snapshot()["success_rate"] == 1.0
    collector.reset()
    snapshot = collector.get_snapshot()
    assert snapshot["state_transitions"] == {}
    assert snapshot["successful_calls"] == 0
    assert snapshot["success_rate"] == 0.0
    assert snapshot["rejection_rate"] == 0.0


def test_priorities_in_gauges_are_ints():
    from tta_agents.compat import MessageMetrics

    metrics = MessageMetrics()
    metrics.set_queue_length("ipa:x", MessagePriority.HIGH, 4)
    assert metrics.gauges.queue_lengths == {("ipa:x", 9): 4}
