"""Metrics people alert on: durations, per-queue gauges, breakers and agents, after a run.

Every test runs on FakeRedis and on the real Redis. The exposition text is produced by
``generate_latest`` on the exporter's own ``CollectorRegistry`` and parsed back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fakeredis import FakeAsyncRedis, FakeServer
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    FailureType,
    MessagePriority,
    MessageType,
    PermanentError,
    RedisMessageCoordinator,
)
from tta_agent_coordination.errors import ConfigurationError, RequestTimeoutError
from tta_agent_coordination.observability.deployment import DeploymentReader
from tta_agent_coordination.observability.metrics import InMemoryMessageMetrics, TimingMetrics
from tta_agent_coordination.observability.prometheus import PrometheusMetrics
from tta_agent_coordination.observability.queue_gauges import QueueSnapshot
from tta_agent_coordination.observability.refresher import MetricsRefresher
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.redis.breaker_store import RedisBreakerStore
from tta_agent_coordination.resilience import CircuitBreaker, CircuitBreakerConfig
from tta_agent_coordination.runtime.worker import AgentWorker
from tta_agent_coordination.testing import fake_redis

SENDER = AgentId("tester", "t1")
WORKER = AgentId("metricsworker", "w1")
IDLE = AgentId("idlequeue", "i1")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples_of(metrics: PrometheusMetrics) -> Samples:
    text = generate_latest(metrics.registry).decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def labels_of(agent: AgentId) -> dict[str, str]:
    return {"agent_type": agent.type, "queue": str(agent)}


def message(recipient: AgentId, n: int, **fields: Any) -> AgentMessage:
    return AgentMessage(
        sender=SENDER,
        recipient=recipient,
        message_type=MessageType.EVENT,
        payload={"n": n},
        **fields,
    )


async def test_a_small_run_is_exported(coordination_redis, key_prefix) -> None:
    metrics = PrometheusMetrics()
    coordinator = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, metrics=metrics
    )
    registry = RedisAgentRegistry(
        coordination_redis, key_prefix=key_prefix, coordinator=coordinator
    )
    breaker = CircuitBreaker(
        "llm",
        CircuitBreakerConfig(failure_threshold=1),
        RedisBreakerStore(coordination_redis, key_prefix),
    )
    worker = AgentWorker(coordinator, registry, WORKER, poll_interval=0.05, grace_period=1.0)
    events = asyncio.Event()

    @worker.on_request()
    async def answer(ctx) -> dict[str, int]:
        return {"double": ctx.payload["n"] * 2}

    @worker.on_event()
    async def fail(ctx) -> None:
        events.set()
        raise PermanentError("bad event")

    async def boom() -> None:
        raise ConnectionError("llm down")

    try:
        # An idle queue: two ready messages (HIGH and NORMAL), nobody consuming.
        await coordinator.send_message(
            SENDER, IDLE, message(IDLE, 1, priority=MessagePriority.HIGH)
        )
        await coordinator.send_message(SENDER, IDLE, message(IDLE, 2))
        with pytest.raises(ConnectionError):
            await breaker.call(boom)  # opens the shared breaker "llm"
        async with worker:
            reply = await coordinator.request(SENDER, WORKER, {"n": 21}, timeout=10)
            assert reply.payload == {"double": 42}
            await coordinator.send_message(SENDER, WORKER, message(WORKER, 3))
            await asyncio.wait_for(events.wait(), 10)
            for _ in range(200):  # the nack that dead-letters it follows the handler
                if (await coordinator.queue_stats(WORKER)).dead == 1:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.02)  # the idle queue's messages have waited >= 20 ms
            refresher = MetricsRefresher(
                metrics, DeploymentReader(coordination_redis, coordinator), registry=registry
            )
            assert await refresher.refresh()
            samples = samples_of(metrics)
    finally:
        await registry.aclose()
        await coordinator.aclose()

    worker_q, idle_q = labels_of(WORKER), labels_of(IDLE)
    handler = "tta_coord_handler_duration_seconds_count"
    assert value(samples, handler, outcome="success", **worker_q) == 1
    assert value(samples, handler, outcome="permanent", **worker_q) == 1
    assert value(samples, "tta_coord_queue_wait_seconds_count", **worker_q) == 2
    request = "tta_coord_request_duration_seconds_count"
    assert value(samples, request, outcome="ok", **worker_q) == 1
    assert (
        value(
            samples,
            "tta_coord_request_duration_seconds_bucket",
            le="+Inf",
            outcome="ok",
            **worker_q,
        )
        == 1
    )

    assert value(samples, "tta_coord_queue_ready", priority="high", **idle_q) == 1
    assert value(samples, "tta_coord_queue_ready", priority="normal", **idle_q) == 1
    assert value(samples, "tta_coord_queue_ready", priority="low", **idle_q) == 0
    age = "tta_coord_queue_oldest_ready_age_seconds"
    assert value(samples, age, priority="high", **idle_q) >= 0.02
    assert value(samples, age, priority="normal", **idle_q) >= 0.02
    assert value(samples, age, priority="low", **idle_q) == 0
    assert value(samples, age, priority="normal", **worker_q) == 0
    assert value(samples, "tta_coord_queue_depth", **idle_q) == 2
    assert value(samples, "tta_coord_queue_depth", **worker_q) == 0
    assert value(samples, "tta_coord_queue_leased", **idle_q) == 0
    assert value(samples, "tta_coord_queue_delayed", **idle_q) == 0
    assert value(samples, "tta_coord_dead_letters", **worker_q) == 1
    assert value(samples, "tta_coord_dead_letters", **idle_q) == 0

    assert value(samples, "tta_coord_breaker_state", breaker="llm", state="open") == 1
    assert value(samples, "tta_coord_breaker_state", breaker="llm", state="closed") == 0
    agents = "tta_coord_registered_agents"
    assert value(samples, agents, agent_type="metricsworker", alive="true") == 1
    assert value(samples, agents, agent_type="metricsworker", alive="false") == 0
    for part in ("queues", "breakers", "registry"):
        assert value(samples, "tta_coord_metrics_last_refresh_timestamp_seconds", part=part) > 0
        assert value(samples, "tta_coord_metrics_refresh_errors_total", part=part) is None


async def test_leased_delayed_and_gone(coordination_redis, key_prefix) -> None:
    metrics = PrometheusMetrics()
    coordinator = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, metrics=metrics, backoff_base=20
    )
    reader = DeploymentReader(coordination_redis, coordinator, batch_size=1)
    refresher = MetricsRefresher(metrics, reader, breakers=False)
    store = RedisBreakerStore(coordination_redis, key_prefix)
    try:
        for n in range(3):
            await coordinator.send_message(SENDER, IDLE, message(IDLE, n))
        await coordinator.send_message(SENDER, WORKER, message(WORKER, 9))
        leased = await coordinator.receive(IDLE, visibility_timeout=30)
        retried = await coordinator.receive(IDLE, visibility_timeout=30)
        assert leased is not None
        assert retried is not None
        assert await coordinator.nack(IDLE, retried.token, FailureType.TRANSIENT, "later")
        assert await refresher.refresh()
        samples = samples_of(metrics)
        idle_q = labels_of(IDLE)
        assert value(samples, "tta_coord_queue_leased", **idle_q) == 1
        assert value(samples, "tta_coord_queue_delayed", **idle_q) == 1
        assert value(samples, "tta_coord_queue_ready", priority="normal", **idle_q) == 1
        assert value(samples, "tta_coord_queue_depth", **idle_q) == 3
        assert value(samples, "tta_coord_queue_depth", **labels_of(WORKER)) == 1

        # The worker's queue is emptied and leaves the queue index: it stops being exported.
        taken = await coordinator.receive(WORKER)
        assert taken is not None
        assert await coordinator.ack(WORKER, taken.token)
        await coordinator.recover_pending(None)
        assert await refresher.refresh()
        samples = samples_of(metrics)
        assert value(samples, "tta_coord_queue_depth", **labels_of(WORKER)) is None
        assert value(samples, "tta_coord_queue_depth", **idle_q) == 3

        # A shared breaker whose state expired stops being exported.
        await store.reset("svc", 0.0)
        with_breakers = MetricsRefresher(metrics, reader)
        assert await with_breakers.refresh()
        assert (
            value(samples_of(metrics), "tta_coord_breaker_state", breaker="svc", state="closed")
            == 1
        )
        await coordination_redis.delete(coordinator.keys.breaker_state("svc"))
        assert await with_breakers.refresh()
        assert (
            value(samples_of(metrics), "tta_coord_breaker_state", breaker="svc", state="closed")
            is None
        )
    finally:
        await coordinator.aclose()


async def test_a_worker_measures_only_its_own_queues(coordination_redis, key_prefix) -> None:
    metrics = PrometheusMetrics()
    coordinator = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    try:
        await coordinator.send_message(SENDER, IDLE, message(IDLE, 1))
        await coordinator.send_message(SENDER, WORKER, message(WORKER, 2))
        metrics.update_queues({"other:x": QueueSnapshot(dead=4)})
        refresher = MetricsRefresher(
            metrics,
            DeploymentReader(coordination_redis, coordinator),
            queues=lambda: [WORKER],
            breakers=False,
        )
        assert await refresher.refresh()
    finally:
        await coordinator.aclose()
    samples = samples_of(metrics)
    assert value(samples, "tta_coord_queue_depth", **labels_of(WORKER)) == 1
    assert value(samples, "tta_coord_queue_depth", **labels_of(IDLE)) is None
    # Queues outside its scope are left as they are (another source may have set them).
    assert value(samples, "tta_coord_dead_letters", agent_type="other", queue="other:x") == 4


async def test_oldest_ready_is_past_the_leased_entries(coordination_coordinator) -> None:
    coordinator = coordination_coordinator
    empty = await coordinator.queue_stats(IDLE)
    assert empty.oldest_ready_at == dict.fromkeys(MessagePriority, None)
    await coordinator.send_message(SENDER, IDLE, message(IDLE, 1))
    first = await coordinator.queue_stats(IDLE)
    await asyncio.sleep(0.01)
    await coordinator.send_message(SENDER, IDLE, message(IDLE, 2))
    # Still the first message's time.
    assert (await coordinator.queue_stats(IDLE)).oldest_ready_at == first.oldest_ready_at
    assert await coordinator.receive(IDLE) is not None
    second = await coordinator.queue_stats(IDLE)
    assert first.oldest_ready_at is not None
    assert second.oldest_ready_at is not None
    before, after = (
        first.oldest_ready_at[MessagePriority.NORMAL],
        second.oldest_ready_at[MessagePriority.NORMAL],
    )
    assert before is not None
    assert after is not None
    assert after > before
    assert second.oldest_ready_at[MessagePriority.HIGH] is None
    assert await coordinator.receive(IDLE) is not None
    assert (await coordinator.queue_stats(IDLE)).oldest_ready_at == dict.fromkeys(
        MessagePriority, None
    )


async def test_queue_wait_counts_first_deliveries_only(coordination_redis, key_prefix) -> None:
    metrics = InMemoryMessageMetrics()
    assert isinstance(metrics, TimingMetrics)
    coordinator = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, metrics=metrics, backoff_base=0.001
    )
    try:
        await coordinator.send_message(SENDER, IDLE, message(IDLE, 1))
        got = await coordinator.receive(IDLE)
        assert got is not None
        assert await coordinator.nack(IDLE, got.token, FailureType.TRANSIENT, "again")
        again = None
        for _ in range(100):
            again = await coordinator.receive(IDLE)
            if again is not None:
                break
            await asyncio.sleep(0.01)
        assert again is not None
        assert again.attempts == 2
    finally:
        await coordinator.aclose()
    waits = metrics.durations["queue_wait"][str(IDLE)]
    assert len(waits) == 1
    assert 0 <= waits[0][0] < 60


async def test_request_outcomes_are_timed(coordination_redis, key_prefix) -> None:
    metrics = InMemoryMessageMetrics()
    coordinator = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, metrics=metrics
    )
    try:
        with pytest.raises(RequestTimeoutError):
            await coordinator.request(SENDER, IDLE, {"n": 1}, timeout=0.05)
        await coordinator.configure(queue_size=1)  # the queue holds the first request
        with pytest.raises(Exception, match="queue full"):
            await coordinator.request(SENDER, IDLE, {"n": 2}, timeout=5)
    finally:
        await coordinator.aclose()
    outcomes = [outcome for _, outcome in metrics.durations["request"][str(IDLE)]]
    assert outcomes == ["timeout", "not_delivered"]


async def test_a_failing_part_is_counted_and_keeps_its_last_values() -> None:
    server = FakeServer()
    client = FakeAsyncRedis(server=server)
    metrics = PrometheusMetrics()
    coordinator = RedisMessageCoordinator(client, key_prefix="metricsfail")
    try:
        await coordinator.send_message(SENDER, IDLE, message(IDLE, 1))
        refresher = MetricsRefresher(metrics, DeploymentReader(client, coordinator), breakers=True)
        assert await refresher.refresh()
        server.connected = False
        assert not await refresher.refresh()
    finally:
        server.connected = True
        await coordinator.aclose()
        await client.aclose()
    samples = samples_of(metrics)
    assert value(samples, "tta_coord_queue_depth", **labels_of(IDLE)) == 1
    assert value(samples, "tta_coord_metrics_refresh_errors_total", part="queues") == 1
    assert value(samples, "tta_coord_metrics_refresh_errors_total", part="breakers") == 1


def test_settings_out_of_range_are_refused() -> None:
    client = fake_redis()
    coordinator = RedisMessageCoordinator(client, key_prefix="metricsconf")
    with pytest.raises(ConfigurationError, match="batch_size"):
        DeploymentReader(client, coordinator, batch_size=0)
    reader = DeploymentReader(client, coordinator)
    with pytest.raises(ConfigurationError, match="interval_s"):
        MetricsRefresher(PrometheusMetrics(), reader, interval_s=0)


async def test_the_refresher_keeps_running_until_cancelled() -> None:
    server = FakeServer()
    server.connected = False
    client = FakeAsyncRedis(server=server)
    metrics = PrometheusMetrics()
    coordinator = RedisMessageCoordinator(client, key_prefix="metricsloop")
    refresher = MetricsRefresher(metrics, DeploymentReader(client, coordinator), interval_s=0.001)
    task = asyncio.create_task(refresher.run())
    try:
        for _ in range(500):
            if (
                value(samples_of(metrics), "tta_coord_metrics_refresh_errors_total", part="queues")
                or 0
            ) >= 3:
                break
            await asyncio.sleep(0.01)
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        server.connected = True
        await coordinator.aclose()
        await client.aclose()
    assert value(samples_of(metrics), "tta_coord_metrics_refresh_errors_total", part="queues") >= 3
