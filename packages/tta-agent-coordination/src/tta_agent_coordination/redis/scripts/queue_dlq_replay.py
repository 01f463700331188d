"""Typed call of ``queue_dlq_replay.lua``: move dead letters back to their ready streams."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.scripts.queue_common import ARGV_HEAD

__all__ = ["NAME", "ReplayOutcome", "call"]

NAME = "queue_dlq_replay"


class ReplayOutcome(NamedTuple):
    """What one replay call moved."""

    replayed: int
    next_cursor: str
    """Where the next call starts; empty once the dead-letter stream is exhausted."""
    message_ids: list[str]
    server_now_ms: int
    """Each replayed message's new first enqueue time."""
    refused: int
    """Dead letters (selected ones) that cannot be delivered: malformed, kept as they are."""


def _parse(raw: list[Any]) -> ReplayOutcome:
    count, cursor, ids, now, refused = raw
    return ReplayOutcome(int(count), text(cursor), [text(i) for i in ids], int(now), int(refused))


def call(
    queue: QueueKeys, *, cursor: str, batch: int, message_ids: Sequence[str] | None
) -> ScriptCall[ReplayOutcome]:
    """Replay up to ``batch`` dead letters after ``cursor`` (``"-"``: from the start).

    ``message_ids=None`` replays every dead letter; otherwise only these ids.
    """
    selected: Sequence[str] = message_ids or ()
    return ScriptCall(
        NAME,
        queue.all_keys,
        [*ARGV_HEAD, cursor, batch, "0" if message_ids is None else "1", *selected],
        _parse,
    )
