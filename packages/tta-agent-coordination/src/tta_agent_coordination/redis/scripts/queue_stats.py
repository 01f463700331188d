"""Typed call of ``queue_stats.lua``: a consistent snapshot of one queue's counts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

from tta_agent_coordination.models import AgentId, QueueStats
from tta_agent_coordination.redis.keys import PRIORITIES_HIGH_FIRST, QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.scripts.queue_common import ARGV_HEAD

__all__ = ["NAME", "QueueCounts", "call", "oldest_ready_ages", "to_stats"]

NAME = "queue_stats"


class QueueCounts(NamedTuple):
    """Messages of one queue by state, and when its oldest ready messages became ready."""

    ready_high: int
    ready_normal: int
    ready_low: int
    leased: int
    delayed: int
    dead: int
    oldest_ready_high_ms: int = 0
    """Entry time (ms, server clock) of the oldest ready HIGH message; 0 when none."""
    oldest_ready_normal_ms: int = 0
    """The same for NORMAL."""
    oldest_ready_low_ms: int = 0
    """The same for LOW."""
    server_now_ms: int = 0
    """The server's clock when the snapshot was taken."""


def _parse(raw: list[Any]) -> QueueCounts:
    return QueueCounts._make(int(v) for v in raw)


def call(queue: QueueKeys) -> ScriptCall[QueueCounts]:
    """Count ``queue``'s messages by state, atomically."""
    return ScriptCall(NAME, queue.all_keys, list(ARGV_HEAD), _parse)


def to_stats(agent_id: AgentId, counts: QueueCounts) -> QueueStats:
    """The ``QueueStats`` of ``agent_id``'s queue from the script's counts."""
    ready = (counts.ready_high, counts.ready_normal, counts.ready_low)
    oldest = (
        counts.oldest_ready_high_ms,
        counts.oldest_ready_normal_ms,
        counts.oldest_ready_low_ms,
    )
    return QueueStats(
        agent_id=agent_id,
        ready=dict(zip(PRIORITIES_HIGH_FIRST, ready, strict=True)),
        leased=counts.leased,
        delayed=counts.delayed,
        dead=counts.dead,
        oldest_ready_at={
            p: datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None
            for p, ms in zip(PRIORITIES_HIGH_FIRST, oldest, strict=True)
        },
    )


def oldest_ready_ages(counts: QueueCounts) -> tuple[float, float, float]:
    """Seconds the oldest ready HIGH, NORMAL and LOW message has waited (0.0: none ready).

    Measured on the server clock, between the entry's time and the snapshot's.
    """
    now = counts.server_now_ms
    oldest = (
        counts.oldest_ready_high_ms,
        counts.oldest_ready_normal_ms,
        counts.oldest_ready_low_ms,
    )
    high, normal, low = (max(0, now - ms) / 1000 if ms else 0.0 for ms in oldest)
    return high, normal, low
