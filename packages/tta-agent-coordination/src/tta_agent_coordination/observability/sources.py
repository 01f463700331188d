"""What a metrics exporter reads from a worker: small protocols, met structurally.

The Prometheus exporter depends on these, not on the runtime: ``AgentWorker`` (with its
``WorkerStats``) satisfies them without naming them, and so would any other worker that
keeps the same counters.
"""

from __future__ import annotations

from typing import Protocol

from tta_agent_coordination.models import AgentId

__all__ = ["WORKER_STAT_FIELDS", "WorkerStatsSnapshot", "WorkerStatsSource"]

WORKER_STAT_FIELDS: tuple[str, ...] = (
    "received",
    "succeeded",
    "retried",
    "dead_lettered",
    "replies",
    "lease_extensions",
    "leases_lost",
    "settle_errors",
    "abandoned",
    "in_flight",
)
"""The counters of :class:`WorkerStatsSnapshot`, in the order they are exported; every one
is cumulative except ``in_flight`` (a gauge)."""


class WorkerStatsSnapshot(Protocol):
    """A worker's counters at one moment (``runtime.worker.WorkerStats`` is one)."""

    received: int
    """Deliveries reserved."""
    succeeded: int
    """Handled and acked."""
    retried: int
    """Failed and scheduled for another delivery."""
    dead_lettered: int
    """Failed for good."""
    replies: int
    """Replies sent to requests."""
    lease_extensions: int
    """Leases pushed forward while a handler ran."""
    leases_lost: int
    """Deliveries whose lease expired before they were settled."""
    settle_errors: int
    """Acks/nacks that failed."""
    abandoned: int
    """In-flight deliveries left leased at shutdown."""
    in_flight: int
    """Handlers running now."""


class WorkerStatsSource(Protocol):
    """A worker as an exporter sees it (``runtime.worker.AgentWorker`` is one)."""

    @property
    def agent_id(self) -> AgentId:
        """The agent whose queue the worker consumes."""
        ...

    @property
    def state(self) -> str:
        """Where the worker is in its life (a ``StrEnum`` such as ``WorkerState``)."""
        ...

    @property
    def stats(self) -> WorkerStatsSnapshot:
        """A snapshot of the worker's counters."""
        ...
