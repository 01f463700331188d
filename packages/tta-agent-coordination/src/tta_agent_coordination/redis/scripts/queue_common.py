"""Typed side of ``queue_common.lua``: the ARGV head of every queue script, moved entries.

Every script that includes ``queue_common.lua`` takes the consumer group and consumer
name as ``ARGV[1]`` and ``ARGV[2]``, so that ``redis/keys.py`` is the one place they are
defined; the scripts' own arguments follow.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from tta_agent_coordination.models import FailureType
from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.keys import CONSUMER_GROUP, CONSUMER_NAME

__all__ = ["ARGV_HEAD", "REQUEUED", "MovedEntry", "moved_entries"]

ARGV_HEAD: tuple[bytes, bytes] = (CONSUMER_GROUP.encode(), CONSUMER_NAME.encode())
"""``ARGV[1]``, ``ARGV[2]`` of every queue script: the consumer group and consumer name.

Bytes, which redis-py sends as they are: no encoding on every call of the hot path.
"""

REQUEUED = 1
"""``MovedEntry.outcome`` of a message put back in its ready stream (2: dead-lettered)."""


class MovedEntry(NamedTuple):
    """A message a script requeued or dead-lettered on the way.

    A lease that ended unsettled, or a message that expired before delivery; reported so
    that a message store learns every lifecycle change.
    """

    message_id: str
    first_enqueued_ms: int
    deliveries: int
    outcome: int
    """1 requeued (:data:`REQUEUED`), 2 dead-lettered."""
    reason: str
    failure: FailureType
    """``TIMEOUT`` (a lease that ended unsettled, an expiry), or ``MALFORMED`` (an entry
    not in the library's format)."""


def moved_entries(raw: list[Any]) -> list[MovedEntry]:
    """The ``moved`` list of a receive or recover outcome, typed."""
    return [
        MovedEntry(
            text(msgid),
            int(first),
            int(deliveries),
            int(outcome),
            text(reason),
            FailureType(text(failure)),
        )
        for msgid, first, deliveries, outcome, reason, failure in raw
    ]
