"""Typed call of ``queue_restore.lua``: enqueue messages again from a message store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.scripts.queue_common import ARGV_HEAD

__all__ = ["NAME", "RestoreItem", "call"]

NAME = "queue_restore"


class RestoreItem(NamedTuple):
    """One message to restore, in the order the script reads it from ARGV."""

    stream_index: int
    message_id: str
    envelope: str
    deliveries: int
    last_error: str
    expires_at_ms: int
    """0 for never."""
    first_enqueued_ms: int
    available_at_ms: int = 0
    """Due time (ms, compared with the server clock); 0 or past: ready at once."""
    failure: str = ""
    """A dead message's failure type: restored into the dead-letter queue; "" when alive."""


def _parse(raw: list[Any]) -> list[bool]:
    return [bool(int(flag)) for flag in raw]


def call(
    queue: QueueKeys, items: Iterable[RestoreItem], *, dlq_max_len: int, dedupe_window_ms: int
) -> ScriptCall[list[bool]]:
    """Restore ``items`` into ``queue``; one flag per item (False: skipped, already known)."""
    argv: list[Any] = [*ARGV_HEAD, dlq_max_len, dedupe_window_ms]
    for item in items:
        argv += item
    return ScriptCall(NAME, queue.all_keys, argv, _parse)
