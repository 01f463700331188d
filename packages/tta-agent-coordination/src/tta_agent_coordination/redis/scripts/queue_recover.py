"""Typed call of ``queue_recover.lua``: return expired leases and due retries of one queue."""

from __future__ import annotations

from typing import Any, NamedTuple

from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.scripts.queue_common import ARGV_HEAD

__all__ = ["NAME", "RecoverOutcome", "call"]

NAME = "queue_recover"


class RecoverOutcome(NamedTuple):
    """What one recover call moved."""

    requeued: int
    dead_lettered: int
    promoted: int
    """Due retries moved to their ready streams."""
    more: bool
    """The limit was hit: call again."""
    removed: bool
    """The queue was empty and its keys were deleted."""
    moved: list[Any]
    """Raw entries of ``queue_common.MovedEntry`` (see ``moved_entries``)."""


def _parse(raw: list[Any]) -> RecoverOutcome:
    requeued, dead, promoted, more, removed, moved = raw
    return RecoverOutcome(
        int(requeued), int(dead), int(promoted), bool(int(more)), bool(int(removed)), moved
    )


def call(
    queue: QueueKeys,
    *,
    retry_attempts: int,
    dlq_max_len: int,
    dedupe_window_ms: int,
    orphan_idle_ms: int,
    limit: int,
    force: bool,
    lessee: str = "",
) -> ScriptCall[RecoverOutcome]:
    """Recover ``queue``; with ``force``, release every lease, expired or not.

    With ``lessee`` (an instance, ``str(AgentId)``), also release every lease that
    instance holds in ``queue`` (recorded by its receives, see ``queue_receive.call``),
    expired or not, before anything else: its type queue's leases when it died.
    """
    return ScriptCall(
        NAME,
        queue.all_keys,
        [
            *ARGV_HEAD,
            retry_attempts,
            dlq_max_len,
            dedupe_window_ms,
            orphan_idle_ms,
            limit,
            1 if force else 0,
            lessee,
        ],
        _parse,
    )
