"""Typed call of ``queue_ack.lua``: settle deliveries as done."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.scripts.queue_common import ARGV_HEAD

__all__ = ["NAME", "AckOutcome", "SettledEntry", "call", "settled_entries"]

NAME = "queue_ack"


class SettledEntry(NamedTuple):
    """A message an ack settled."""

    message_id: str
    first_enqueued_ms: int
    deliveries: int


class AckOutcome(NamedTuple):
    """One flag per token (False: unknown or already settled), and what was settled."""

    flags: list[bool]
    acked: list[Any]
    """Raw entries of :class:`SettledEntry` (see :func:`settled_entries`)."""


def settled_entries(raw: list[Any]) -> list[SettledEntry]:
    """``AckOutcome.acked``, typed (only a message store needs it)."""
    return [SettledEntry(text(i), int(first), int(n)) for i, first, n in raw]


def _parse(raw: list[Any]) -> AckOutcome:
    flags, acked = raw
    return AckOutcome([bool(int(f)) for f in flags], acked)


def call(
    queue: QueueKeys, *, dedupe_window_ms: int, tokens: Sequence[str]
) -> ScriptCall[AckOutcome]:
    """Ack ``tokens`` of ``queue``; their ids stay duplicates for ``dedupe_window_ms``."""
    return ScriptCall(NAME, queue.all_keys, [*ARGV_HEAD, dedupe_window_ms, *tokens], _parse)
