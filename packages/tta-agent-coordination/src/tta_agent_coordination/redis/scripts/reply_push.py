"""Typed call of ``reply_push.lua``: deliver one reply to a requester's inbox."""

from __future__ import annotations

from typing import Any

from tta_agent_coordination.redis.lua import ScriptCall

__all__ = ["NAME", "call"]

NAME = "reply_push"


def _parse(raw: Any) -> None:
    return None


def call(inbox: str, *, envelope: str, ttl_ms: str | int, max_replies: int) -> ScriptCall[None]:
    """Append ``envelope`` to ``inbox``.

    The inbox keeps its newest ``max_replies`` and expires ``ttl_ms`` milliseconds after
    the last push.
    """
    return ScriptCall(NAME, [inbox], [envelope, ttl_ms, max_replies], _parse)
