"""Typed call of ``queue_dlq_reject.lua``: dead-letter deliveries that could not be decoded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.scripts.queue_common import ARGV_HEAD

__all__ = ["NAME", "RejectOutcome", "call"]

NAME = "queue_dlq_reject"


class RejectOutcome(NamedTuple):
    """What one reject call dead-lettered."""

    dead_lettered: int
    moved: list[Any]
    """Raw entries of ``queue_common.MovedEntry`` (see ``moved_entries``)."""


def _parse(raw: list[Any]) -> RejectOutcome:
    count, moved = raw
    return RejectOutcome(int(count), moved)


def call(
    queue: QueueKeys,
    rejected: Sequence[tuple[str, str]],
    *,
    dlq_max_len: int,
    dedupe_window_ms: int,
) -> ScriptCall[RejectOutcome]:
    """Dead-letter each ``(token, reason)`` of ``rejected`` as ``malformed``, raw fields kept."""
    pairs = [part for token, reason in rejected for part in (token, reason)]
    return ScriptCall(
        NAME, queue.all_keys, [*ARGV_HEAD, dlq_max_len, dedupe_window_ms, *pairs], _parse
    )
