"""Per-queue gauges for Prometheus: the last measured state of each queue.

A :class:`QueueSnapshot` is what one ``queue_stats`` run measured; :class:`QueueGauges`
keeps the latest snapshot of every queue and yields them as metric families at scrape
time. A refresh replaces the snapshots of the queues it covers as a whole, so a queue
that is gone (removed from the queue index) stops being exported instead of staying at
its last value, and a scrape never sees half a refresh.

Labels: ``agent_type`` and ``queue`` (``str(agent_id)``, whatever its shape: the type
is the part before the first ``:``), and ``priority`` (``high``, ``normal``, ``low``)
for the per-priority series.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

__all__ = ["PRIORITY_LABELS", "QueueGauges", "QueueSnapshot", "queue_labels"]

PRIORITY_LABELS: tuple[str, str, str] = ("high", "normal", "low")
"""The ``priority`` label values, highest first (the order of the snapshot's tuples)."""

_QUEUE_LABELS = ("agent_type", "queue")


def queue_labels(queue: str) -> tuple[str, str]:
    """The ``agent_type`` and ``queue`` label values of a queue named ``queue``."""
    # "type:instance", or "type" alone for a queue shared by every instance of a type.
    return queue.partition(":")[0], queue


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """One queue as last measured (a ``queue_stats`` run); unknown parts are None."""

    ready: tuple[int, int, int] | None = None
    """Ready messages per priority, HIGH first."""
    oldest_ready_age_s: tuple[float, float, float] | None = None
    """Seconds the oldest ready message of each priority has waited (0.0: none ready)."""
    leased: int | None = None
    """Messages leased to a consumer now."""
    delayed: int | None = None
    """Messages waiting for a retry."""
    dead: int | None = None
    """Dead letters held."""
    depth: int | None = None
    """Unsettled messages: ready, leased and delayed (what counts against queue_size)."""

    @classmethod
    def measured(
        cls,
        ready: tuple[int, int, int],
        oldest_ready_age_s: tuple[float, float, float],
        *,
        leased: int,
        delayed: int,
        dead: int,
    ) -> QueueSnapshot:
        """A complete snapshot (``depth`` derived from the counts)."""
        return cls(
            ready=ready,
            oldest_ready_age_s=oldest_ready_age_s,
            leased=leased,
            delayed=delayed,
            dead=dead,
            depth=sum(ready) + leased + delayed,
        )


# (name, help, per priority)
_FAMILIES = (
    (
        "queue_depth",
        "Unsettled messages (ready, leased, delayed) in a queue, as last measured.",
        False,
    ),
    ("queue_ready", "Messages ready to be leased, by priority, as last measured.", True),
    (
        "queue_oldest_ready_age_seconds",
        "How long the oldest ready message of each priority has waited since it became "
        "ready (Redis server clock; 0 when none is ready), as last measured.",
        True,
    ),
    ("queue_leased", "Messages leased to a consumer, as last measured.", False),
    ("queue_delayed", "Messages waiting for a retry, as last measured.", False),
    ("dead_letters", "Dead letters held for a queue, as last measured.", False),
)


class QueueGauges:
    """The latest :class:`QueueSnapshot` of every queue, exported at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, QueueSnapshot] = {}

    def set_depth(self, queue: str, depth: int) -> None:
        """Change ``queue``'s unsettled count, keeping the rest of its snapshot."""
        with self._lock:
            self._queues[queue] = replace(self._queues.get(queue, QueueSnapshot()), depth=depth)

    def set_dead(self, queue: str, dead: int) -> None:
        """Change ``queue``'s dead-letter count, keeping the rest of its snapshot."""
        with self._lock:
            self._queues[queue] = replace(self._queues.get(queue, QueueSnapshot()), dead=dead)

    def replace(self, snapshots: Mapping[str, QueueSnapshot], *, covering: Iterable[str]) -> None:
        """Set the snapshots of the queues in ``covering`` to ``snapshots`` as a whole.

        A queue of ``covering`` missing from ``snapshots`` is no longer exported; queues
        outside ``covering`` are left as they are.
        """
        with self._lock:
            for queue in covering:
                self._queues.pop(queue, None)
            self._queues.update(snapshots)

    def replace_all(self, snapshots: Mapping[str, QueueSnapshot]) -> None:
        """Export exactly ``snapshots`` (every other queue is dropped)."""
        with self._lock:
            self._queues = dict(snapshots)

    def snapshot(self, queue: str) -> QueueSnapshot | None:
        """The latest snapshot of ``queue``, if any."""
        with self._lock:
            return self._queues.get(queue)

    def collect(self, namespace: str) -> Iterator[Metric]:
        """The queue gauge families of every queue (each family even when empty)."""
        with self._lock:
            queues = sorted(self._queues.items())
        for name, doc, per_priority in _FAMILIES:
            labels = (*_QUEUE_LABELS, "priority") if per_priority else _QUEUE_LABELS
            family = GaugeMetricFamily(f"{namespace}_{name}", doc, labels=labels)
            for queue, snap in queues:
                head = list(queue_labels(queue))
                values = _values(name, snap)
                if values is None:
                    continue
                if per_priority:
                    for label, value in zip(PRIORITY_LABELS, values, strict=True):
                        family.add_metric([*head, label], value)
                else:
                    family.add_metric(head, values[0])
            yield family


def _values(name: str, snap: QueueSnapshot) -> tuple[float, ...] | None:
    """The value(s) of family ``name`` in ``snap``, or None when not measured."""
    one: int | None
    if name == "queue_ready":
        return None if snap.ready is None else tuple(float(v) for v in snap.ready)
    if name == "queue_oldest_ready_age_seconds":
        return snap.oldest_ready_age_s
    if name == "queue_depth":
        one = snap.depth
    elif name == "queue_leased":
        one = snap.leased
    elif name == "queue_delayed":
        one = snap.delayed
    else:
        one = snap.dead
    return None if one is None else (float(one),)
