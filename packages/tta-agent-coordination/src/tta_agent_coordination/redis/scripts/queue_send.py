"""Typed call of ``queue_send.lua``: enqueue messages into one queue."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.scripts.queue_common import ARGV_HEAD

__all__ = ["DUPLICATE", "ENQUEUED", "NAME", "QUEUE_FULL_CODE", "SendItem", "SendOutcome", "call"]

NAME = "queue_send"

ENQUEUED = 1
"""Code of a message enqueued."""
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


class SendOutcome(NamedTuple):
    """What one send call did.

    One code per message (:data:`ENQUEUED`, :data:`DUPLICATE`, :data:`QUEUE_FULL_CODE`),
    and the server time written as each enqueued message's first enqueue time.
    """

    codes: list[int]
    server_now_ms: int


def _parse(raw: list[Any]) -> SendOutcome:
    return SendOutcome(raw[:-1], int(raw[-1]))


def call(
    queue: QueueKeys, *, queue_size: int, items: Iterable[SendItem]
) -> ScriptCall[SendOutcome]:
    """Enqueue ``items`` into ``queue`` unless it holds ``queue_size`` unsettled messages."""
    argv: list[Any] = [*ARGV_HEAD, queue_size]
    for item in items:
        argv += item
    return ScriptCall(NAME, queue.all_keys, argv, _parse)
