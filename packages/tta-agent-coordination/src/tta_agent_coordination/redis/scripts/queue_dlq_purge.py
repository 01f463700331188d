"""Typed call of ``queue_dlq_purge.lua``: delete a queue's dead-letter stream."""

from __future__ import annotations

from typing import Any

from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall

__all__ = ["NAME", "call"]

NAME = "queue_dlq_purge"


def _parse(raw: Any) -> int:
    return int(raw)


def call(queue: QueueKeys) -> ScriptCall[int]:
    """Delete ``queue``'s dead letters; the outcome is how many there were.

    The only queue script without ``queue_common``: its one key is the dead-letter stream.
    """
    return ScriptCall(NAME, [queue.dlq], [], _parse)
