"""Message metrics: a protocol, a no-op default and an in-memory implementation.

Counters are labelled by queue (``"type:instance"``), never by message id, so that an
exporter's label cardinality stays bounded by the number of agents.

``inc_expired`` (messages dead-lettered because they expired before delivery) is newer
than the other counters and optional: a metrics class without it keeps working, its
expiries counted by ``inc_permanent`` as before (see :func:`expired_counter`).

Durations are optional in the same way: a metrics class that also implements
:class:`TimingMetrics` gets the handler duration (from ``AgentWorker``), the queue wait
(enqueue to lease, from the receive path) and the request round trip (from
``request``), in seconds; :func:`timing_of` finds it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "CounterMetricsBase",
    "ExpiryMetrics",
    "InMemoryMessageMetrics",
    "MessageMetrics",
    "NoOpMessageMetrics",
    "TimingMetrics",
    "expired_counter",
    "timing_of",
]


@runtime_checkable
class MessageMetrics(Protocol):
    """What a coordinator reports. Every method is cheap and must never raise.

    Implement :class:`ExpiryMetrics`' ``inc_expired`` too to count expiries apart from
    other dead letters; it is not a member of this protocol, so that classes written
    before it still pass ``isinstance(metrics, MessageMetrics)``.
    """

    def inc_delivered_ok(self, queue: str, n: int = 1) -> None:
        """Messages accepted into ``queue``."""
        ...

    def inc_delivered_error(self, queue: str, n: int = 1) -> None:
        """Sends to ``queue`` that were refused or failed."""
        ...

    def inc_received(self, queue: str, n: int = 1) -> None:
        """Messages reserved from ``queue``."""
        ...

    def inc_acked(self, queue: str, n: int = 1) -> None:
        """Messages of ``queue`` settled as done."""
        ...

    def inc_nacks(self, queue: str, n: int = 1) -> None:
        """Negative acknowledgements on ``queue``."""
        ...

    def inc_retries_scheduled(self, queue: str, n: int = 1) -> None:
        """Messages of ``queue`` scheduled for another delivery."""
        ...

    def inc_permanent(self, queue: str, n: int = 1) -> None:
        """Messages of ``queue`` dead-lettered (permanent failure or retries exhausted).

        Expiries too, when the class has no ``inc_expired``.
        """
        ...

    def inc_recovered(self, queue: str, n: int = 1) -> None:
        """Expired leases and due retries of ``queue`` returned to the ready streams."""
        ...

    def set_queue_depth(self, queue: str, depth: int) -> None:
        """Gauge: unsettled messages (ready, leased, delayed) in ``queue``."""
        ...

    def set_dead_letters(self, queue: str, count: int) -> None:
        """Gauge: dead letters held for ``queue``."""
        ...


@runtime_checkable
class ExpiryMetrics(Protocol):
    """The optional counter of expired messages (see the module docstring)."""

    def inc_expired(self, queue: str, n: int = 1) -> None:
        """Messages of ``queue`` dead-lettered because they expired before delivery."""
        ...


@runtime_checkable
class TimingMetrics(Protocol):
    """The optional durations, in seconds (see the module docstring); must never raise."""

    def observe_handler(self, queue: str, seconds: float, outcome: str) -> None:
        """A handler of ``queue`` ran for ``seconds``.

        ``outcome``: ``"success"``, or the failure type (``"transient"``,
        ``"permanent"``, ``"timeout"``).
        """
        ...

    def observe_queue_wait(self, queue: str, seconds: float) -> None:
        """A message of ``queue`` was first leased ``seconds`` after it was sent.

        Both instants are on the Redis server clock.
        """
        ...

    def observe_request(self, queue: str, seconds: float, outcome: str) -> None:
        """A request to ``queue`` got its answer, or gave up, after ``seconds``.

        ``outcome``: ``"ok"``, ``"error"`` (the handler failed), ``"timeout"`` or
        ``"not_delivered"``.
        """
        ...


def timing_of(metrics: object) -> TimingMetrics | None:
    """``metrics`` when it implements :class:`TimingMetrics`, else None (nothing to time)."""
    return metrics if isinstance(metrics, TimingMetrics) else None


def expired_counter(metrics: MessageMetrics) -> Callable[[str, int], None]:
    """``metrics.inc_expired``, or ``metrics.inc_permanent`` when the class has none."""
    if isinstance(metrics, ExpiryMetrics):
        return metrics.inc_expired
    return metrics.inc_permanent


class NoOpMessageMetrics:
    """Discards every metric; the default."""

    def inc_delivered_ok(self, queue: str, n: int = 1) -> None:
        """Discard."""

    def inc_delivered_error(self, queue: str, n: int = 1) -> None:
        """Discard."""

    def inc_received(self, queue: str, n: int = 1) -> None:
        """Discard."""

    def inc_acked(self, queue: str, n: int = 1) -> None:
        """Discard."""

    def inc_nacks(self, queue: str, n: int = 1) -> None:
        """Discard."""

    def inc_retries_scheduled(self, queue: str, n: int = 1) -> None:
        """Discard."""

    def inc_permanent(self, queue: str, n: int = 1) -> None:
        """Discard."""

    def inc_expired(self, queue: str, n: int = 1) -> None:
        """Discard."""

    def inc_recovered(self, queue: str, n: int = 1) -> None:
        """Discard."""

    def set_queue_depth(self, queue: str, depth: int) -> None:
        """Discard."""

    def set_dead_letters(self, queue: str, count: int) -> None:
        """Discard."""


class CounterMetricsBase(ABC):
    """The counter half of :class:`MessageMetrics`, each method feeding one ``_inc``.

    Implementations (in memory, Prometheus, a plugin's own exporter) only say how to add
    ``n`` to counter ``name`` of ``queue``, and implement the two gauges.
    """

    @abstractmethod
    def _inc(self, name: str, queue: str, n: int) -> None:
        """Add ``n`` to counter ``name`` (``"delivered_ok"``, ``"acked"``, ...) of ``queue``.

        The names are the ``inc_*`` method suffixes, ``"expired"`` included.
        """

    def inc_delivered_ok(self, queue: str, n: int = 1) -> None:
        """Count accepted sends."""
        self._inc("delivered_ok", queue, n)

    def inc_delivered_error(self, queue: str, n: int = 1) -> None:
        """Count refused or failed sends."""
        self._inc("delivered_error", queue, n)

    def inc_received(self, queue: str, n: int = 1) -> None:
        """Count reservations."""
        self._inc("received", queue, n)

    def inc_acked(self, queue: str, n: int = 1) -> None:
        """Count acks."""
        self._inc("acked", queue, n)

    def inc_nacks(self, queue: str, n: int = 1) -> None:
        """Count nacks."""
        self._inc("nacks", queue, n)

    def inc_retries_scheduled(self, queue: str, n: int = 1) -> None:
        """Count scheduled retries."""
        self._inc("retries_scheduled", queue, n)

    def inc_permanent(self, queue: str, n: int = 1) -> None:
        """Count dead letters (but expiries)."""
        self._inc("permanent", queue, n)

    def inc_expired(self, queue: str, n: int = 1) -> None:
        """Count messages dead-lettered because they expired before delivery."""
        self._inc("expired", queue, n)

    def inc_recovered(self, queue: str, n: int = 1) -> None:
        """Count recovered messages."""
        self._inc("recovered", queue, n)


@dataclass
class InMemoryMessageMetrics(CounterMetricsBase):
    """Keeps counters and gauges in dictionaries; handy in tests and for a status page.

    ``counters[name][queue]`` holds each counter (``"delivered_ok"``, ``"acked"``, ...),
    ``gauges[name][queue]`` each gauge.
    """

    counters: dict[str, Counter[str]] = field(default_factory=dict[str, Counter[str]])
    gauges: dict[str, dict[str, int]] = field(default_factory=dict[str, dict[str, int]])
    durations: dict[str, dict[str, list[tuple[float, str]]]] = field(
        default_factory=dict[str, dict[str, list[tuple[float, str]]]]
    )
    """``durations[name][queue]``: (seconds, outcome) of every ``observe_<name>`` call
    (``"handler"``, ``"queue_wait"`` with outcome ``""``, ``"request"``)."""

    def _inc(self, name: str, queue: str, n: int) -> None:
        self.counters.setdefault(name, Counter())[queue] += n

    def total(self, name: str) -> int:
        """The sum of counter ``name`` over every queue (0 when never incremented)."""
        return sum(self.counters.get(name, Counter()).values())

    def set_queue_depth(self, queue: str, depth: int) -> None:
        """Record the queue depth."""
        self.gauges.setdefault("queue_depth", {})[queue] = depth

    def set_dead_letters(self, queue: str, count: int) -> None:
        """Record the dead-letter count."""
        self.gauges.setdefault("dead_letters", {})[queue] = count

    def _observe(self, name: str, queue: str, seconds: float, outcome: str) -> None:
        self.durations.setdefault(name, {}).setdefault(queue, []).append((seconds, outcome))

    def observe_handler(self, queue: str, seconds: float, outcome: str) -> None:
        """Record a handler's duration."""
        self._observe("handler", queue, seconds, outcome)

    def observe_queue_wait(self, queue: str, seconds: float) -> None:
        """Record a first delivery's wait in its queue."""
        self._observe("queue_wait", queue, seconds, "")

    def observe_request(self, queue: str, seconds: float, outcome: str) -> None:
        """Record a request's round trip."""
        self._observe("request", queue, seconds, outcome)
