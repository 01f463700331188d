"""Pages of a queue's dead letters, read by stream-entry-id cursors (for the dashboard).

``RedisMessageCoordinator.dead_letters`` reads the oldest ``limit``; a view of a
dead-letter queue of 10,000 entries needs any page of it instead, in one ``XRANGE`` or
``XREVRANGE`` with ``COUNT``, never a read of the whole stream. Read-only: replay and purge
stay with the coordinator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId, DeadLetter, UndecodableDeadLetter
from tta_agent_coordination.redis.codec import decode_dead_letter, text
from tta_agent_coordination.redis.keys import KeySpace

__all__ = [
    "MAX_PAGE",
    "DeadLetterPage",
    "check_entry_id",
    "read_dead_letter",
    "read_dead_letter_page",
]

MAX_PAGE = 500
"""The largest page one read returns."""

_ENTRY_ID_RE = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


def check_entry_id(value: str) -> str:
    """``value`` when it is a stream entry id (``<ms>-<seq>``).

    Raises:
        ConfigurationError: it is not one.
    """
    if not _ENTRY_ID_RE.fullmatch(value):
        raise ConfigurationError(
            f"invalid dead-letter id {value!r}: expected a stream entry id such as 1700000000000-0"
        )
    return value


@dataclass(frozen=True)
class DeadLetterPage:
    """Up to ``count`` dead letters, oldest first, and the cursors around them."""

    letters: list[DeadLetter | UndecodableDeadLetter]
    older: str | None
    """Pass as ``before`` for the page before this one; None when this is the first."""
    newer: str | None
    """Pass as ``after`` for the page after this one; None when this is the last."""


def _decode(entries: Any) -> list[DeadLetter | UndecodableDeadLetter]:
    pairs: list[tuple[Any, Any]] = list(entries or [])
    return [decode_dead_letter(entry_id, fields or {}) for entry_id, fields in pairs]


async def read_dead_letter_page(
    redis: RedisClient,
    keys: KeySpace,
    agent_id: AgentId,
    *,
    after: str | None = None,
    before: str | None = None,
    count: int = 50,
) -> DeadLetterPage:
    """One page of ``agent_id``'s dead letters: one Redis command, whatever the DLQ holds.

    Without cursors, the oldest ``count``; with ``after``, the ``count`` after that entry;
    with ``before``, the ``count`` before it.

    Raises:
        ConfigurationError: ``count`` is out of 1..MAX_PAGE, a cursor is not an entry id,
            or both cursors are given.
    """
    if not 1 <= count <= MAX_PAGE:
        raise ConfigurationError(f"count must be within 1..{MAX_PAGE}, got {count}")
    if after is not None and before is not None:
        raise ConfigurationError("give at most one of after and before")
    dlq = keys.queue(agent_id).dlq
    if before is not None:
        entries: list[Any] = list(
            await redis.xrevrange(dlq, f"({check_entry_id(before)}", "-", count=count + 1) or []
        )
        more = len(entries) > count
        page = _decode(list(reversed(entries[:count])))
        older = page[0].dead_letter_id if more and page else None
        newer = page[-1].dead_letter_id if page else None
        return DeadLetterPage(page, older=older, newer=newer)
    start = "-" if after is None else f"({check_entry_id(after)}"
    entries = list(await redis.xrange(dlq, start, "+", count=count + 1) or [])
    more = len(entries) > count
    page = _decode(entries[:count])
    newer = page[-1].dead_letter_id if more and page else None
    older = page[0].dead_letter_id if after is not None and page else None
    return DeadLetterPage(page, older=older, newer=newer)


async def read_dead_letter(
    redis: RedisClient, keys: KeySpace, agent_id: AgentId, dead_letter_id: str
) -> DeadLetter | UndecodableDeadLetter | None:
    """The dead letter with stream entry id ``dead_letter_id``, or None when it is gone.

    Raises:
        ConfigurationError: ``dead_letter_id`` is not a stream entry id.
    """
    entry_id = check_entry_id(dead_letter_id)
    entries = await redis.xrange(keys.queue(agent_id).dlq, entry_id, entry_id, count=1)
    letters = _decode(entries)
    return letters[0] if letters and text(letters[0].dead_letter_id) == entry_id else None
