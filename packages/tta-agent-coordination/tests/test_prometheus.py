"""The Prometheus exporter, scraped over real HTTP and parsed as exposition text."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, fields
from enum import StrEnum

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    FailureType,
    MessageType,
    RedisMessageCoordinator,
)
from tta_agent_coordination.observability.metrics import MessageMetrics
from tta_agent_coordination.observability.prometheus import PrometheusMetrics, serve_metrics
from tta_agent_coordination.observability.sources import WORKER_STAT_FIELDS, WorkerStatsSource
from tta_agent_coordination.resilience import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerRegistry,
)
from tta_agent_coordination.runtime.worker import WorkerStats
from tta_agent_coordination.store import StoreMetrics

SENDER = AgentId("tester", "t1")
AGENT = AgentId("promagent", "p1")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def message(n: int) -> AgentMessage:
    return AgentMessage(
        sender=SENDER, recipient=AGENT, message_type=MessageType.REQUEST, payload={"n": n}
    )


@pytest.fixture
def served():
    metrics = PrometheusMetrics()
    server = serve_metrics(0, registry=metrics)
    try:
        yield metrics, server
    finally:
        server.close()


def test_implements_the_metrics_protocols() -> None:
    metrics = PrometheusMetrics()
    assert isinstance(metrics, MessageMetrics)
    assert isinstance(metrics, StoreMetrics)


def test_two_exporters_do_not_clash() -> None:
    PrometheusMetrics()
    PrometheusMetrics()  # each has its own registry by default


async def test_message_metrics_are_scraped_without_message_ids(
    coordination_redis, key_prefix, served
) -> None:
    metrics, server = served
    coordinator = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, metrics=metrics
    )
    try:
        await coordinator.configure(retry_attempts=0)
        sent = [message(n) for n in range(3)]
        for msg in sent:
            assert (await coordinator.send_message(SENDER, AGENT, msg)).delivered
        first = await coordinator.receive(AGENT, visibility_timeout=5)
        second = await coordinator.receive(AGENT, visibility_timeout=5)
        assert first is not None
        assert second is not None
        assert await coordinator.ack(AGENT, first.token)
        assert await coordinator.nack(AGENT, second.token, FailureType.PERMANENT, error="bad")
        await coordinator.queue_stats(AGENT)
    finally:
        await coordinator.aclose()

    samples = await asyncio.to_thread(scrape, server.port)
    labels = {"agent_type": "promagent", "queue": "promagent:p1"}
    assert value(samples, "tta_coord_messages_sent_total", **labels) == 3
    assert value(samples, "tta_coord_messages_received_total", **labels) == 2
    assert value(samples, "tta_coord_messages_acked_total", **labels) == 1
    assert value(samples, "tta_coord_messages_nacked_total", **labels) == 1
    assert value(samples, "tta_coord_messages_dead_lettered_total", **labels) == 1
    assert value(samples, "tta_coord_queue_depth", **labels) == 1
    assert value(samples, "tta_coord_dead_letters", **labels) == 1

    ids = {msg.message_id for msg in sent} | {first.token, second.token}
    label_values = {v for (_, label_set) in samples for (_, v) in label_set}
    assert not ids & label_values, "a message id or token leaked into a label"
    assert all(i not in v for i in ids for v in label_values)


def test_queue_without_instance_and_store_metrics(served) -> None:
    metrics, server = served
    metrics.inc_delivered_error("typewide")
    metrics.inc_retries_scheduled("a:b", 2)
    metrics.inc_recovered("a:b", 3)
    metrics.inc_received("a:b")
    metrics.inc_store_backpressure(4)
    metrics.set_store_pending(7)
    samples = scrape(server.port)
    assert (
        value(samples, "tta_coord_messages_refused_total", agent_type="typewide", queue="typewide")
        == 1
    )
    assert value(samples, "tta_coord_messages_retried_total", agent_type="a", queue="a:b") == 2
    assert value(samples, "tta_coord_messages_recovered_total", agent_type="a", queue="a:b") == 3
    assert value(samples, "tta_coord_store_backpressure_total") == 4
    assert value(samples, "tta_coord_store_pending") == 7


async def test_worker_stats_are_read_at_scrape_time(
    coordination_worker_factory, coordination_coordinator, served
) -> None:
    metrics, server = served
    done = asyncio.Event()
    first = coordination_worker_factory("promworker:w1", registry=None)
    second = coordination_worker_factory("promworker:w1", registry=None)
    handled: list[int] = []
    for worker in (first, second):

        @worker.on_request()
        async def handle(ctx) -> None:
            handled.append(ctx.payload["n"])
            if len(handled) == 4:
                done.set()

        metrics.track_worker(worker)
    agent = AgentId("promworker", "w1")
    for n in range(4):
        msg = AgentMessage(
            sender=SENDER, recipient=agent, message_type=MessageType.REQUEST, payload={"n": n}
        )
        assert (await coordination_coordinator.send_message(SENDER, agent, msg)).delivered
    async with first, second:
        await asyncio.wait_for(done.wait(), 30)
        running = await asyncio.to_thread(scrape, server.port)
    labels = {"agent_type": "promworker", "queue": "promworker:w1"}
    assert value(running, "tta_coord_workers", state="running", **labels) == 2
    # Two competing workers of one queue are summed.
    assert value(running, "tta_coord_worker_received_total", **labels) == 4
    assert value(running, "tta_coord_worker_in_flight", **labels) is not None
    after = await asyncio.to_thread(scrape, server.port)
    assert value(after, "tta_coord_worker_succeeded_total", **labels) == 4
    assert value(after, "tta_coord_workers", state="stopped", **labels) == 2

    metrics.untrack_worker(first)
    del first, worker
    second_only = await asyncio.to_thread(scrape, server.port)
    assert value(second_only, "tta_coord_workers", state="stopped", **labels) == 1


def test_weak_tracking_forgets_collected_workers(coordination_coordinator) -> None:
    from tta_agent_coordination import AgentWorker

    metrics = PrometheusMetrics()
    worker = AgentWorker(coordination_coordinator, None, AgentId("weak", "w"))
    metrics.track_worker(worker)
    names = {
        s.labels.get("queue")
        for fam in metrics.collect_runtime()
        for s in fam.samples
        if fam.name.endswith("workers")
    }
    assert "weak:w" in names
    del worker
    gc.collect()
    names = {
        s.labels.get("queue")
        for fam in metrics.collect_runtime()
        for s in fam.samples
        if fam.name.endswith("workers")
    }
    assert "weak:w" not in names


class FakeState(StrEnum):
    BUSY = "busy"


@dataclass
class FakeStats:
    received: int = 0
    succeeded: int = 0
    retried: int = 0
    dead_lettered: int = 0
    replies: int = 0
    lease_extensions: int = 0
    leases_lost: int = 0
    settle_errors: int = 0
    abandoned: int = 0
    in_flight: int = 0


@dataclass(eq=False)
class FakeWorker:
    """Not an AgentWorker: the exporter needs only the WorkerStatsSource protocol."""

    agent_id: AgentId
    state: FakeState
    stats: FakeStats


def test_every_worker_stat_is_exported() -> None:
    assert tuple(f.name for f in fields(WorkerStats)) == WORKER_STAT_FIELDS


def test_any_worker_stats_source_is_exported() -> None:
    metrics = PrometheusMetrics()
    families = {fam.name: fam for fam in metrics.collect_runtime()}
    for name in WORKER_STAT_FIELDS:  # every family is there before any worker is tracked
        assert f"tta_coord_worker_{name}" in families
    one: WorkerStatsSource = FakeWorker(
        AgentId("fake", "f1"), FakeState.BUSY, FakeStats(received=3, in_flight=1)
    )
    two = FakeWorker(AgentId("fake", "f1"), FakeState.BUSY, FakeStats(received=2, abandoned=1))
    metrics.track_worker(one)
    metrics.track_worker(two)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for fam in metrics.collect_runtime()
        for sample in fam.samples
    }
    labels = {"agent_type": "fake", "queue": "fake:f1"}
    assert value(samples, "tta_coord_worker_received_total", **labels) == 5
    assert value(samples, "tta_coord_worker_abandoned_total", **labels) == 1
    assert value(samples, "tta_coord_worker_in_flight", **labels) == 1
    assert value(samples, "tta_coord_workers", state="busy", **labels) == 2


def test_the_exporter_does_not_import_the_runtime() -> None:
    # The package root imports everything, so it is replaced by an empty package: what
    # loads is what the exporter itself imports.
    code = (
        "import importlib.util, json, sys, types\n"
        "spec = importlib.util.find_spec('tta_agent_coordination')\n"
        "root = types.ModuleType('tta_agent_coordination')\n"
        "root.__path__ = list(spec.submodule_search_locations)\n"
        "sys.modules['tta_agent_coordination'] = root\n"
        "import tta_agent_coordination.observability.prometheus\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith("
        "('tta_agent_coordination.runtime', 'tta_agent_coordination.redis')))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


async def test_breaker_state_follows_its_listener(served) -> None:
    metrics, server = served
    breaker = CircuitBreaker("redis-main", CircuitBreakerConfig(failure_threshold=1))
    metrics.track_breaker(breaker)
    metrics.track_breaker(breaker)  # twice changes nothing (one listener)
    samples = await asyncio.to_thread(scrape, server.port)
    assert value(samples, "tta_coord_breaker_state", breaker="redis-main", state="closed") == 1
    assert value(samples, "tta_coord_breaker_state", breaker="redis-main", state="open") == 0

    async def boom() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await breaker.call(boom)
    samples = await asyncio.to_thread(scrape, server.port)
    assert value(samples, "tta_coord_breaker_state", breaker="redis-main", state="open") == 1
    assert value(samples, "tta_coord_breaker_state", breaker="redis-main", state="closed") == 0
    assert (
        value(samples, "tta_coord_breaker_transitions_total", breaker="redis-main", state="open")
        == 1
    )
    assert (
        value(samples, "tta_coord_breaker_calls_total", breaker="redis-main", outcome="failure")
        == 1
    )


async def test_breakers_of_a_registry_are_tracked() -> None:
    breakers = CircuitBreakerRegistry()
    breakers.get_or_create("one")
    breakers.get_or_create("two")
    metrics = PrometheusMetrics(CollectorRegistry(), namespace="app")
    metrics.track_breakers(breakers)
    names = {
        s.labels["breaker"]
        for fam in metrics.collect_runtime()
        for s in fam.samples
        if fam.name == "app_breaker_calls"
    }
    assert names == {"one", "two"}


async def test_registry_liveness_counts(coordination_registry, served) -> None:
    metrics, server = served
    await coordination_registry.register_id(AgentId("planner", "a"))
    await coordination_registry.register_id(AgentId("planner", "b"))
    await coordination_registry.register_id(AgentId("critic", "c"))
    await metrics.refresh_registry(coordination_registry)
    samples = await asyncio.to_thread(scrape, server.port)
    assert value(samples, "tta_coord_registered_agents", agent_type="planner", alive="true") == 2
    assert value(samples, "tta_coord_registered_agents", agent_type="critic", alive="true") == 1
    await coordination_registry.deregister(AgentId("critic", "c"))
    await metrics.refresh_registry(coordination_registry)
    samples = await asyncio.to_thread(scrape, server.port)
    # A type with no agents left goes to 0 instead of staying at its last value or
    # vanishing (an alert on "no live instance of a type" needs the 0).
    assert value(samples, "tta_coord_registered_agents", agent_type="critic", alive="true") == 0
    assert value(samples, "tta_coord_registered_agents", agent_type="critic", alive="false") == 0
    assert value(samples, "tta_coord_registered_agents", agent_type="planner", alive="true") == 2


class FailingRegistry:
    def __init__(self) -> None:
        self.calls = 0
        self.third = asyncio.Event()

    async def list_registered(self):
        self.calls += 1
        if self.calls == 3:
            self.third.set()
        raise ConnectionError("registry down")


async def test_registry_refresher_survives_failures() -> None:
    metrics = PrometheusMetrics()
    failing = FailingRegistry()
    task = asyncio.create_task(metrics.run_registry_refresher(failing, 0.001))  # type: ignore[arg-type]
    await asyncio.wait_for(failing.third.wait(), 10)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_serve_metrics_on_a_plain_registry_and_the_default() -> None:
    registry = CollectorRegistry()
    server = serve_metrics(0, registry=registry)
    try:
        assert scrape(server.port) == {}
    finally:
        server.close()
    default = serve_metrics(0)
    try:
        # The process-wide registry carries prometheus_client's own process metrics.
        assert any(name.startswith("python_") for name, _ in scrape(default.port))
    finally:
        default.close()
