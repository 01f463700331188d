"""Typed call of ``queue_cancel.lua``: cancel a scheduled send still in the delayed set."""

from __future__ import annotations

from typing import Any, NamedTuple

from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.scripts.queue_common import ARGV_HEAD

__all__ = ["NAME", "CancelOutcome", "call"]

NAME = "queue_cancel"


class CancelOutcome(NamedTuple):
    """Whether the message was cancelled, and its first enqueue time (ms) if it was."""

    cancelled: bool
    first_enqueued_ms: int


def _parse(raw: list[Any]) -> CancelOutcome:
    if not int(raw[0]):
        return CancelOutcome(False, 0)
    return CancelOutcome(True, int(raw[1]))


def call(queue: QueueKeys, message_id: str) -> ScriptCall[CancelOutcome]:
    """Cancel ``message_id`` in ``queue`` if it is a scheduled send not yet due and promoted."""
    return ScriptCall(NAME, queue.all_keys, [*ARGV_HEAD, message_id], _parse)
