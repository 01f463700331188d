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
stays bounded by the number of agents. ``tta-coord worker --metrics-port`` serves it,
and ``tta-coord exporter`` the deployment-wide view.

Durations are histograms in seconds (it implements ``TimingMetrics``); the per-queue
gauges (depth by priority, oldest ready age, leased, delayed, dead) come from
snapshots that :class:`~tta_agent_coordination.observability.refresher.MetricsRefresher`
measures periodically (:meth:`PrometheusMetrics.update_queues`). Every series is listed
in ``docs/observability.md``.

Workers are read through a small protocol,
:class:`~tta_agent_coordination.observability.sources.WorkerStatsSource`, which
``AgentWorker`` meets structurally: the exporter never imports the runtime.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.observability.metrics import CounterMetricsBase
from tta_agent_coordination.observability.metrics_server import MetricsServer, serve_metrics
from tta_agent_coordination.observability.queue_gauges import (
    QueueGauges,
    QueueSnapshot,
    queue_labels,
)
from tta_agent_coordination.observability.sources import WORKER_STAT_FIELDS, WorkerStatsSource
from tta_agent_coordination.resilience.breaker_state import CircuitState

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from prometheus_client.metrics_core import Metric

    from tta_agent_coordination.interfaces import AgentRegistry
    from tta_agent_coordination.resilience.breaker_registry import CircuitBreakerRegistry
    from tta_agent_coordination.resilience.circuit_breaker import CircuitBreaker

__all__ = [
    "DEFAULT_NAMESPACE",
    "DURATION_BUCKETS",
    "MetricsServer",
    "PrometheusMetrics",
    "serve_metrics",
]

DEFAULT_NAMESPACE = "tta_coord"
"""The prefix of every metric name."""

DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
"""Histogram buckets (seconds): from a 5 ms dispatch to a 5-minute LLM call."""

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


_labels = queue_labels


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
        self._queues = QueueGauges()
        self._handler_duration = Histogram(
            "handler_duration_seconds",
            "How long handlers ran, by outcome (success, transient, permanent, timeout).",
            (*_QUEUE_LABELS, "outcome"),
            namespace=namespace,
            registry=reg,
            buckets=DURATION_BUCKETS,
        )
        self._queue_wait = Histogram(
            "queue_wait_seconds",
            "From send to first lease (Redis server clock), per first delivery.",
            _QUEUE_LABELS,
            namespace=namespace,
            registry=reg,
            buckets=DURATION_BUCKETS,
        )
        self._request_duration = Histogram(
            "request_duration_seconds",
            "Request round trips, by recipient queue and outcome "
            "(ok, error, timeout, not_delivered).",
            (*_QUEUE_LABELS, "outcome"),
            namespace=namespace,
            registry=reg,
            buckets=DURATION_BUCKETS,
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
        self._refresh_errors = Counter(
            "metrics_refresh_errors",
            "Periodic measurements that failed, by part (queues, breakers, registry).",
            ("part",),
            namespace=namespace,
            registry=reg,
        )
        self._refresh_last = Gauge(
            "metrics_last_refresh_timestamp_seconds",
            "When each part was last measured successfully (Unix time).",
            ("part",),
            namespace=namespace,
            registry=reg,
        )
        self._refresh_duration = Gauge(
            "metrics_refresh_duration_seconds",
            "How long the last measurement of each part took.",
            ("part",),
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
        self._agent_types: set[str] = set()
        self._shared_breakers: set[str] = set()
        reg.register(_RuntimeCollector(self))

    # --- MessageMetrics ---------------------------------------------------------------

    def _inc(self, name: str, queue: str, n: int) -> None:
        self._counters[name].labels(*_labels(queue)).inc(n)

    def set_queue_depth(self, queue: str, depth: int) -> None:
        """Record the queue depth."""
        self._queues.set_depth(queue, depth)

    def set_dead_letters(self, queue: str, count: int) -> None:
        """Record the dead-letter count."""
        self._queues.set_dead(queue, count)

    # --- TimingMetrics ----------------------------------------------------------------

    def observe_handler(self, queue: str, seconds: float, outcome: str) -> None:
        """Record how long a handler of ``queue`` ran."""
        self._handler_duration.labels(*_labels(queue), outcome).observe(seconds)

    def observe_queue_wait(self, queue: str, seconds: float) -> None:
        """Record a first delivery's wait from send to lease."""
        self._queue_wait.labels(*_labels(queue)).observe(seconds)

    def observe_request(self, queue: str, seconds: float, outcome: str) -> None:
        """Record a request's round trip to ``queue``."""
        self._request_duration.labels(*_labels(queue), outcome).observe(seconds)

    # --- queue snapshots ----------------------------------------------------------------

    def update_queues(
        self, snapshots: Mapping[str, QueueSnapshot], *, covering: Iterable[str] | None = None
    ) -> None:
        """Export ``snapshots`` (queue name to its latest measurement).

        With ``covering`` (the queues the measurement was about), only those queues are
        replaced, and one of them missing from ``snapshots`` stops being exported; with
        None, ``snapshots`` is every queue there is, and any other queue is dropped.
        """
        if covering is None:
            self._queues.replace_all(snapshots)
        else:
            self._queues.replace(snapshots, covering=covering)

    def queue_snapshot(self, queue: str) -> QueueSnapshot | None:
        """The latest measurement of ``queue`` exported, if any."""
        return self._queues.snapshot(queue)

    def record_refresh(self, part: str, *, ok: bool, duration_s: float, at: float) -> None:
        """Record one periodic measurement of ``part`` (``queues``, ``breakers``, ...).

        ``at`` is the Unix time it finished; only a successful one moves the timestamp.
        """
        self._refresh_duration.labels(part).set(duration_s)
        if ok:
            self._refresh_last.labels(part).set(at)
        else:
            self._refresh_errors.labels(part).inc()

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

    def set_breaker_states(self, states: Mapping[str, CircuitState]) -> None:
        """Export the states of breakers shared through Redis, read by name.

        A shared breaker no longer in ``states`` (its state expired) stops being
        exported, unless a breaker of that name is tracked in this process.
        """
        with self._lock:
            gone = self._shared_breakers - set(states) - set(self._breakers.keys())
            self._shared_breakers = set(states)
        for name, state in states.items():
            self._set_breaker_state(name, state)
        for name in gone:
            for candidate in CircuitState:
                try:
                    self._breaker_state.remove(name, candidate.value)
                except KeyError:
                    continue

    def _on_breaker_change(self, name: str, old: CircuitState, new: CircuitState) -> None:
        self._set_breaker_state(name, new)
        self._breaker_transitions.labels(name, new.value).inc()

    def _set_breaker_state(self, name: str, state: CircuitState) -> None:
        for candidate in CircuitState:
            self._breaker_state.labels(name, candidate.value).set(int(candidate is state))

    # --- registry ---------------------------------------------------------------------

    async def refresh_registry(self, registry: AgentRegistry) -> None:
        """Read ``registry`` once and export how many agents of each type are alive.

        Every type seen since this exporter started keeps both series (``alive="true"``
        and ``"false"``), at 0 once its agents are gone: an alert on "no live instance
        of a type" needs a 0, not a series that vanished.

        Raises:
            AgentRegistryError: the registry could not be read (the last counts stay).
        """
        records = await registry.list_registered()
        with self._lock:
            types = self._agent_types | {r.agent_id.type for r in records}
            counts = {(t, alive): 0 for t in types for alive in ("true", "false")}
            for record in records:
                counts[(record.agent_id.type, "true" if record.alive else "false")] += 1
            # Replaced whole, so a scrape never sees half an update.
            self._agent_types = types
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
        """The scrape-time series: queues, worker stats, breaker counters, registry counts."""
        ns = self.namespace
        yield from self._queues.collect(ns)
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
