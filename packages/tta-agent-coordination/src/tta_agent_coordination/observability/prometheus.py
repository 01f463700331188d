"""Prometheus exporter (the ``prometheus`` extra): messages, queues, workers, registry, breakers.

::

    metrics = PrometheusMetrics()
    coordinator = RedisMessageCoordinator(redis, metrics=metrics)
    metrics.track_worker(worker)             # worker.stats, read at scrape time
    metrics.track_breaker(breaker)           # state through the breaker's listener API
    server = serve_metrics(9108, registry=metrics)
    ...
    server.close()

Every series is labelled by ``agent_type`` and ``queue`` (``"type:instance"``), breaker
series by the breaker's name, and nothing by message id, so that the number of series
stays bounded by the number of agents. ``tta-coord worker --metrics-port`` serves it.

Workers are read through a small protocol,
:class:`~tta_agent_coordination.observability.sources.WorkerStatsSource`, which
``AgentWorker`` meets structurally: the exporter never imports the runtime.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.observability.metrics import CounterMetricsBase
from tta_agent_coordination.observability.sources import WORKER_STAT_FIELDS, WorkerStatsSource
from tta_agent_coordination.resilience.breaker_state import CircuitState

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric

    from tta_agent_coordination.interfaces import AgentRegistry
    from tta_agent_coordination.resilience.breaker_registry import CircuitBreakerRegistry
    from tta_agent_coordination.resilience.circuit_breaker import CircuitBreaker

__all__ = ["DEFAULT_NAMESPACE", "MetricsServer", "PrometheusMetrics", "serve_metrics"]

DEFAULT_NAMESPACE = "tta_coord"
"""The prefix of every metric name."""

_QUEUE_LABELS = ("agent_type", "queue")

_log = get_logger("tta_agent_coordination.observability.prometheus")

# (MessageMetrics method suffix, metric name, help)
_MESSAGE_COUNTERS = (
    ("delivered_ok", "messages_sent", "Messages accepted into a queue."),
    ("delivered_error", "messages_refused", "Sends to a queue that were refused or failed."),
    ("received", "messages_received", "Messages reserved from a queue."),
    ("acked", "messages_acked", "Messages settled as done."),
    ("nacks", "messages_nacked", "Negative acknowledgements."),
    ("retries_scheduled", "messages_retried", "Messages scheduled for another delivery."),
    ("permanent", "messages_dead_lettered", "Messages moved to the dead-letter queue."),
    ("expired", "messages_expired", "Messages dead-lettered as expired before delivery."),
    ("recovered", "messages_recovered", "Expired leases and due retries made ready again."),
)


def _labels(queue: str) -> tuple[str, str]:
    # The coordinator reports queues as "type:instance" (or "type" for a type-wide queue).
    return queue.partition(":")[0], queue


class _RuntimeCollector(Collector):
    """Reads workers and breakers at scrape time, so they need no change to be exported."""

    def __init__(self, owner: PrometheusMetrics) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Metric]:
        yield from self._owner.collect_runtime()


class PrometheusMetrics(CounterMetricsBase):
    """A :class:`~tta_agent_coordination.observability.metrics.MessageMetrics` for Prometheus.

    Also a ``StoreMetrics`` (write-behind buffer of a message store), and an exporter of
    worker stats (any :class:`~tta_agent_coordination.observability.sources.WorkerStatsSource`,
    such as ``AgentWorker``), circuit breakers and registry liveness.

    Args:
        registry: where the series are registered; a new ``CollectorRegistry`` by default
            (so that two instances never clash; pass ``prometheus_client.REGISTRY`` to
            share the process-wide one).
        namespace: the prefix of every metric name.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        self.registry: CollectorRegistry = registry if registry is not None else CollectorRegistry()
        """The registry holding every series of this exporter."""
        self.namespace = namespace
        """The prefix of every metric name."""
        reg = self.registry
        self._counters = {
            key: Counter(name, doc, _QUEUE_LABELS, namespace=namespace, registry=reg)
            for key, name, doc in _MESSAGE_COUNTERS
        }
        self._queue_depth = Gauge(
            "queue_depth",
            "Unsettled messages (ready, leased, delayed) in a queue, as last measured.",
            _QUEUE_LABELS,
            namespace=namespace,
            registry=reg,
        )
        self._dead_letters = Gauge(
            "dead_letters",
            "Dead letters held for a queue, as last measured.",
            _QUEUE_LABELS,
            namespace=namespace,
            registry=reg,
        )
        self._store_backpressure = Counter(
            "store_backpressure",
            "Producers that waited because the store's write-behind buffer was full.",
            namespace=namespace,
            registry=reg,
        )
        self._store_pending = Gauge(
            "store_pending",
            "Store events accepted but not yet written.",
            namespace=namespace,
            registry=reg,
        )
        self._breaker_state = Gauge(
            "breaker_state",
            "1 for the state a circuit breaker is in, 0 for the others.",
            ("breaker", "state"),
            namespace=namespace,
            registry=reg,
        )
        self._breaker_transitions = Counter(
            "breaker_transitions",
            "State changes of a circuit breaker, by the state entered.",
            ("breaker", "state"),
            namespace=namespace,
            registry=reg,
        )
        self._lock = threading.Lock()
        # Weak: a worker or breaker that is dropped stops being exported instead of leaking.
        self._workers: weakref.WeakSet[WorkerStatsSource] = weakref.WeakSet()
        self._breakers: weakref.WeakValueDictionary[str, CircuitBreaker] = (
            weakref.WeakValueDictionary()
        )
        self._agents: dict[tuple[str, str], int] = {}
        reg.register(_RuntimeCollector(self))

    # --- MessageMetrics ---------------------------------------------------------------

    def _inc(self, name: str, queue: str, n: int) -> None:
        self._counters[name].labels(*_labels(queue)).inc(n)

    def set_queue_depth(self, queue: str, depth: int) -> None:
        """Record the queue depth."""
        self._queue_depth.labels(*_labels(queue)).set(depth)

    def set_dead_letters(self, queue: str, count: int) -> None:
        """Record the dead-letter count."""
        self._dead_letters.labels(*_labels(queue)).set(count)

    # --- StoreMetrics -----------------------------------------------------------------

    def inc_store_backpressure(self, n: int = 1) -> None:
        """Count producers that waited for the store's buffer."""
        self._store_backpressure.inc(n)

    def set_store_pending(self, pending: int) -> None:
        """Record the store events not yet written."""
        self._store_pending.set(pending)

    # --- workers ----------------------------------------------------------------------

    def track_worker(self, worker: WorkerStatsSource) -> None:
        """Export ``worker.stats`` (read at each scrape) until the worker is dropped.

        Several workers of one queue (competing consumers) are summed.
        """
        with self._lock:
            self._workers.add(worker)

    def untrack_worker(self, worker: WorkerStatsSource) -> None:
        """Stop exporting ``worker`` (no error if it was not tracked)."""
        with self._lock:
            self._workers.discard(worker)

    # --- breakers ---------------------------------------------------------------------

    def track_breaker(self, breaker: CircuitBreaker) -> None:
        """Export ``breaker``'s state (kept current by a state-change listener) and counters.

        Tracking the same breaker twice changes nothing.
        """
        with self._lock:
            if self._breakers.get(breaker.name) is breaker:
                return
            self._breakers[breaker.name] = breaker
        self._set_breaker_state(breaker.name, breaker.state)
        breaker.add_listener(self._on_breaker_change)

    def track_breakers(self, breakers: CircuitBreakerRegistry) -> None:
        """Track every breaker in ``breakers`` now (call again after adding more)."""
        for name in breakers.list_names():
            breaker = breakers.get(name)
            if breaker is not None:
                self.track_breaker(breaker)

    def _on_breaker_change(self, name: str, old: CircuitState, new: CircuitState) -> None:
        self._set_breaker_state(name, new)
        self._breaker_transitions.labels(name, new.value).inc()

    def _set_breaker_state(self, name: str, state: CircuitState) -> None:
        for candidate in CircuitState:
            self._breaker_state.labels(name, candidate.value).set(int(candidate is state))

    # --- registry ---------------------------------------------------------------------

    async def refresh_registry(self, registry: AgentRegistry) -> None:
        """Read ``registry`` once and export how many agents of each type are alive.

        Raises:
            AgentRegistryError: the registry could not be read (the last counts stay).
        """
        counts: dict[tuple[str, str], int] = {}
        for record in await registry.list_registered():
            key = (record.agent_id.type, "true" if record.alive else "false")
            counts[key] = counts.get(key, 0) + 1
        with self._lock:
            # Replaced whole, so a scrape never sees half an update or a vanished type.
            self._agents = counts

    async def run_registry_refresher(
        self, registry: AgentRegistry, interval_s: float = 15.0
    ) -> None:
        """Refresh the registry counts every ``interval_s`` seconds until cancelled.

        A failed read is skipped (the previous counts stay); run it as a task you keep.
        """
        while True:
            try:
                await self.refresh_registry(registry)
            except Exception as exc:  # metrics must never stop on a registry/Redis outage
                _log.warning(
                    "registry_metrics_refresh_failed", error=f"{type(exc).__name__}: {exc}"
                )
            await asyncio.sleep(interval_s)

    # --- scrape -----------------------------------------------------------------------

    def collect_runtime(self) -> Iterator[Metric]:
        """The scrape-time series: worker stats, breaker counters, registry counts."""
        ns = self.namespace
        with self._lock:
            workers = list(self._workers)
            breakers = list(self._breakers.values())
            agents = dict(self._agents)

        totals: dict[tuple[str, str], dict[str, int]] = {}
        states: dict[tuple[str, str, str], int] = {}
        for worker in workers:
            agent_id = worker.agent_id
            key = (agent_id.type, str(agent_id))
            into = totals.setdefault(key, {})
            stats = worker.stats
            for name in WORKER_STAT_FIELDS:
                into[name] = into.get(name, 0) + int(getattr(stats, name))
            state_key = (*key, str(worker.state))
            states[state_key] = states.get(state_key, 0) + 1
        for name in WORKER_STAT_FIELDS:
            if name == "in_flight":
                family: Metric = GaugeMetricFamily(
                    f"{ns}_worker_in_flight", "Handlers running now.", labels=_QUEUE_LABELS
                )
            else:
                family = CounterMetricFamily(
                    f"{ns}_worker_{name}",
                    f"AgentWorker stats.{name} (summed over the queue's workers).",
                    labels=_QUEUE_LABELS,
                )
            for key, values in sorted(totals.items()):
                family.add_metric(list(key), values.get(name, 0))
            yield family
        workers_family = GaugeMetricFamily(
            f"{ns}_workers", "Tracked workers by state.", labels=(*_QUEUE_LABELS, "state")
        )
        for (agent_type, queue, state), count in sorted(states.items()):
            workers_family.add_metric([agent_type, queue, state], count)
        yield workers_family

        calls = CounterMetricFamily(
            f"{ns}_breaker_calls",
            "Calls through a circuit breaker, by outcome.",
            labels=("breaker", "outcome"),
        )
        for breaker in sorted(breakers, key=lambda b: b.name):
            snapshot = breaker.metrics
            for outcome, value in (
                ("success", snapshot.successes),
                ("failure", snapshot.failures),
                ("ignored", snapshot.ignored),
                ("rejected", snapshot.rejections),
            ):
                calls.add_metric([breaker.name, outcome], value)
        yield calls

        registered = GaugeMetricFamily(
            f"{ns}_registered_agents",
            "Agents in the registry at the last refresh, by type and liveness.",
            labels=("agent_type", "alive"),
        )
        for (agent_type, alive), count in sorted(agents.items()):
            registered.add_metric([agent_type, alive], count)
        yield registered


@dataclass
class MetricsServer:
    """A running ``/metrics`` HTTP endpoint (a daemon thread); :meth:`close` stops it."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The port it listens on (the one chosen when started with port 0)."""
        return int(self.server.server_port)

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(
    port: int,
    *,
    registry: PrometheusMetrics | CollectorRegistry | None = None,
    addr: str = "127.0.0.1",
) -> MetricsServer:
    """Serve ``registry`` in the Prometheus text format on ``http://addr:port/``.

    Args:
        port: the TCP port; 0 picks a free one (see :attr:`MetricsServer.port`).
        registry: a :class:`PrometheusMetrics` or a ``CollectorRegistry``;
            ``prometheus_client.REGISTRY`` (process-wide) by default.
        addr: the address to bind; loopback by default, ``0.0.0.0`` to be scraped from
            other hosts.
    """
    if isinstance(registry, PrometheusMetrics):
        target: CollectorRegistry = registry.registry
    elif registry is None:
        from prometheus_client import REGISTRY

        target = REGISTRY
    else:
        target = registry
    server, thread = start_http_server(port, addr=addr, registry=target)
    return MetricsServer(server, thread)
