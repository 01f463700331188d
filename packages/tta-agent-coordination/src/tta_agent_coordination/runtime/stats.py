"""What a worker reports: its state (``WorkerState``) and its counters (``WorkerStats``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["WorkerState", "WorkerStats"]


class WorkerState(StrEnum):
    """Where a worker is in its life."""

    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass
class WorkerStats:
    """Counters of one worker since it started."""

    received: int = 0
    """Deliveries reserved."""
    succeeded: int = 0
    """Handled and acked."""
    retried: int = 0
    """Failed and scheduled for another delivery."""
    dead_lettered: int = 0
    """Failed for good (permanent failure, invalid payload, no handler, retries spent)."""
    replies: int = 0
    """Replies sent to requests."""
    lease_extensions: int = 0
    """Leases pushed forward while a handler ran."""
    leases_lost: int = 0
    """Deliveries whose lease expired before they were settled (handled elsewhere)."""
    settle_errors: int = 0
    """Acks/nacks that failed on back-end errors (the lease expires and the message returns)."""
    abandoned: int = 0
    """In-flight deliveries left leased at shutdown after the grace period."""
    in_flight: int = 0
    """Handlers running now."""
