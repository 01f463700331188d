"""Typed call of ``dedupe_sweep.lua``: expire one orphaned dedupe set's old ids."""

from __future__ import annotations

from typing import Any, NamedTuple

from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall

__all__ = ["NAME", "SweepOutcome", "call"]

NAME = "dedupe_sweep"


class SweepOutcome(NamedTuple):
    """What one sweep of one dedupe set did."""

    removed: int
    """Ids whose dedupe window had passed, removed."""
    deleted: bool
    """The set lost its last id (Redis deleted it)."""


def _parse(raw: list[Any]) -> SweepOutcome:
    return SweepOutcome(int(raw[0]), bool(int(raw[1])))


def call(queue: QueueKeys) -> ScriptCall[SweepOutcome]:
    """Sweep ``queue``'s dedupe set (``queue.dedupe``, its only key)."""
    return ScriptCall(NAME, (queue.dedupe,), (), _parse)
