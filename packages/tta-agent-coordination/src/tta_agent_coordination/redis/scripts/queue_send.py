"""Typed call of ``queue_send.lua``: enqueue messages into one queue, now or later."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any, NamedTuple

from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.scripts.queue_common import ARGV_HEAD

__all__ = [
    "DUPLICATE",
    "ENQUEUED",
    "NAME",
    "QUEUE_FULL_CODE",
    "SCHEDULED",
    "SEND_KEYS",
    "SendItem",
    "SendOutcome",
    "call",
]

NAME = "queue_send"

ENQUEUED = 1
"""Code of a message enqueued (ready now)."""
SCHEDULED = 2
"""Code of a message put in the delayed set: ready at its due time (``SendOutcome.dues``)."""
DUPLICATE = 0
"""Code of a message whose id is unsettled, or settled within the dedupe window."""
QUEUE_FULL_CODE = -1
"""Code of a message refused because the queue holds ``queue_size`` unsettled messages."""


class SendItem(NamedTuple):
    """One message to enqueue, in the order the script reads it from ARGV."""

    stream_index: int
    """1-based index of its ready stream (``codec.priority_index``)."""
    message_id: str
    envelope: str
    expires_at_ms: int
    """0 for never."""
    delay_ms: int = 0
    """Due this long after the server's ``TIME`` when the script runs (0: no delay)."""
    not_before_ms: int = 0
    """Due no earlier than this instant, compared with the server clock (0: none)."""


class SendOutcome(NamedTuple):
    """What one send call did.

    One code per message (:data:`ENQUEUED`, :data:`SCHEDULED`, :data:`DUPLICATE`,
    :data:`QUEUE_FULL_CODE`), the server time written as each accepted message's first
    enqueue time, and one due time (ms, server clock) per message, 0 unless scheduled.
    """

    codes: list[int]
    server_now_ms: int
    dues: list[int]


def _parse(raw: list[Any]) -> SendOutcome:
    codes, now, dues = raw
    return SendOutcome(codes, int(now), dues)


SEND_KEYS = 9
"""How many of ``QueueKeys.all_keys`` the script gets: KEYS 1..9 (the ready streams up to
the wake stream). It never reads the lessee keys (10, 11), so they are not sent: two
arguments fewer to encode on every send (issue 20)."""


@lru_cache(maxsize=4096)
def _head(queue: QueueKeys, queue_size: int) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """The KEYS and the ARGV head of a send to ``queue``, encoded once.

    redis-py sends bytes as they are; strings and ints it encodes again on every call,
    which was ~4 µs of each single send (issue 20). Bounded: a process that sends to
    more queues than this re-encodes the least recently used ones.
    """
    keys = tuple(key.encode() for key in queue.all_keys[:SEND_KEYS])
    return keys, (*ARGV_HEAD, str(queue_size).encode())


def call(
    queue: QueueKeys, *, queue_size: int, items: Iterable[SendItem]
) -> ScriptCall[SendOutcome]:
    """Enqueue ``items`` into ``queue`` unless it holds ``queue_size`` unsettled messages.

    KEYS are the first :data:`SEND_KEYS` of ``queue.all_keys`` and the head of ARGV
    (group, consumer, ``queue_size``) is sent pre-encoded, as bytes.
    """
    keys, head = _head(queue, queue_size)
    argv: list[Any] = [*head]
    for item in items:
        argv += item
    return ScriptCall(NAME, keys, argv, _parse)
