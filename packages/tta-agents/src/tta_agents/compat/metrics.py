"""``MessageMetrics``: the original in-memory counters, fed by the core coordinator.

The original coordinator owned a ``MessageMetrics`` with three groups of numbers
(``retry``, ``delivery``, ``gauges``) and a ``snapshot()``. This class keeps them and
implements the core's ``MessageMetrics`` protocol, so the core's coordinator feeds it. The
core labels every counter with its queue (``"type:instance"``); the totals here add the
queues up, and :attr:`MessageMetrics.per_queue` keeps the labelled counts.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DeliveryStats", "MessageMetrics", "QueueGauges", "RetryStats"]


@dataclass
class RetryStats:
    """Nacks and retries (the original ``RetryStats``)."""

    total_nacks: int = 0
    total_permanent_failures: int = 0
    total_retries_scheduled: int = 0
    last_backoff_seconds: float = 0.0


@dataclass
class DeliveryStats:
    """Sends that were and were not enqueued (the original ``DeliveryStats``)."""

    delivered_ok: int = 0
    delivered_error: int = 0


@dataclass
class QueueGauges:
    """Queue and dead-letter lengths, keyed as the original (``("ipa:x", 5)``, ``"ipa:x"``)."""

    queue_lengths: dict[tuple[str, int], int] = field(default_factory=dict[tuple[str, int], int])
    dlq_lengths: dict[str, int] = field(default_factory=dict[str, int])


class MessageMetrics:
    """The original coordinator metrics, as a sink of the core's metrics protocol.

    Pass it to the compat ``RedisMessageCoordinator`` (which makes one by default) and read
    ``coordinator.metrics.snapshot()`` as before. ``last_backoff_seconds`` is the nominal
    delay of the last retry the compat coordinator scheduled (before any jitter).
    """

    def __init__(self) -> None:
        self.retry = RetryStats()
        self.delivery = DeliveryStats()
        self.gauges = QueueGauges()
        self.per_queue: Counter[tuple[str, str]] = Counter()
        """``(counter, queue) -> n``: the core's labelled counts."""
        self.last_update = time.time()

    def _count(self, name: str, queue: str, n: int) -> None:
        self.per_queue[(name, queue)] += n
        self.last_update = time.time()

    # --- the core's MessageMetrics protocol ---------------------------------------------

    def inc_delivered_ok(self, queue: str, n: int = 1) -> None:
        """A message was enqueued."""
        self.delivery.delivered_ok += n
        self._count("delivered_ok", queue, n)

    def inc_delivered_error(self, queue: str, n: int = 1) -> None:
        """A send failed or was refused."""
        self.delivery.delivered_error += n
        self._count("delivered_error", queue, n)

    def inc_received(self, queue: str, n: int = 1) -> None:
        """Messages were leased."""
        self._count("received", queue, n)

    def inc_acked(self, queue: str, n: int = 1) -> None:
        """Deliveries were acked."""
        self._count("acked", queue, n)

    def inc_nacks(self, queue: str, n: int = 1) -> None:
        """Deliveries were nacked (a nack that dead-letters counts too, unlike the original)."""
        self.retry.total_nacks += n
        self._count("nacks", queue, n)

    def inc_retries_scheduled(self, queue: str, n: int = 1) -> None:
        """Retries were scheduled."""
        self.retry.total_retries_scheduled += n
        self._count("retries_scheduled", queue, n)

    def inc_permanent(self, queue: str, n: int = 1) -> None:
        """Messages were dead-lettered."""
        self.retry.total_permanent_failures += n
        self._count("permanent", queue, n)

    def inc_expired(self, queue: str, n: int = 1) -> None:
        """Messages passed their ``expires_at`` and were dead-lettered."""
        self._count("expired", queue, n)

    def inc_recovered(self, queue: str, n: int = 1) -> None:
        """Expired leases were returned to their queue."""
        self._count("recovered", queue, n)

    def set_queue_depth(self, queue: str, depth: int) -> None:
        """The core's queue-depth gauge (all priorities); kept under priority 0."""
        self.gauges.queue_lengths[(queue, 0)] = depth
        self.last_update = time.time()

    def set_dead_letters(self, queue: str, count: int) -> None:
        """The core's dead-letter gauge."""
        self.gauges.dlq_lengths[queue] = count
        self.last_update = time.time()

    # --- the original's API -------------------------------------------------------------

    def record_backoff(self, seconds: float) -> None:
        """Note the delay of the retry just scheduled (``retry.last_backoff_seconds``)."""
        self.retry.last_backoff_seconds = seconds
        self.last_update = time.time()

    def set_queue_length(self, agent_key: str, priority: int, length: int) -> None:
        """Set the gauge of one agent's queue at one priority (``agent_key`` like ``ipa:x``)."""
        self.gauges.queue_lengths[(agent_key, int(priority))] = length
        self.last_update = time.time()

    def set_dlq_length(self, agent_key: str, length: int) -> None:
        """Set the dead-letter gauge of one agent."""
        self.gauges.dlq_lengths[agent_key] = length
        self.last_update = time.time()

    def snapshot(self) -> dict[str, Any]:
        """The original snapshot: ``{"retry", "delivery", "gauges", "last_update"}``.

        Queue gauges are keyed ``"agent|prio"`` as in the original.
        """
        return {
            "retry": {
                "total_nacks": self.retry.total_nacks,
                "total_permanent_failures": self.retry.total_permanent_failures,
                "total_retries_scheduled": self.retry.total_retries_scheduled,
                "last_backoff_seconds": self.retry.last_backoff_seconds,
            },
            "delivery": {
                "delivered_ok": self.delivery.delivered_ok,
                "delivered_error": self.delivery.delivered_error,
            },
            "gauges": {
                "queue_lengths": {
                    f"{agent}|{prio}": n for (agent, prio), n in self.gauges.queue_lengths.items()
                },
                "dlq_lengths": dict(self.gauges.dlq_lengths),
            },
            "last_update": self.last_update,
        }
