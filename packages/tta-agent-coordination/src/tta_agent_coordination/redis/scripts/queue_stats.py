"""Typed call of ``queue_stats.lua``: a consistent snapshot of one queue's counts."""

from __future__ import annotations

from typing import Any, NamedTuple

from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.scripts.queue_common import ARGV_HEAD

__all__ = ["NAME", "QueueCounts", "call"]

NAME = "queue_stats"


class QueueCounts(NamedTuple):
    """Messages of one queue by state."""

    ready_high: int
    ready_normal: int
    ready_low: int
    leased: int
    delayed: int
    dead: int


def _parse(raw: list[Any]) -> QueueCounts:
    return QueueCounts._make(int(v) for v in raw)


def call(queue: QueueKeys) -> ScriptCall[QueueCounts]:
    """Count ``queue``'s messages by state, atomically."""
    return ScriptCall(NAME, queue.all_keys, list(ARGV_HEAD), _parse)
