"""Typed call of ``queue_extend.lua``: push a lease's deadline."""

from __future__ import annotations

from typing import Any

from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.scripts.queue_common import ARGV_HEAD

__all__ = ["NAME", "call"]

NAME = "queue_extend"


def _parse(raw: Any) -> int:
    return int(raw)


def call(queue: QueueKeys, *, token: str, lease_ms: int) -> ScriptCall[int]:
    """Extend ``token``'s lease to ``lease_ms`` from now.

    The outcome is the new deadline (ms, server clock), or 0 for an unknown or settled
    token.
    """
    return ScriptCall(NAME, queue.all_keys, [*ARGV_HEAD, token, lease_ms], _parse)
