"""The migration journal: removing a legacy entry and recording it as moved, in one script.

A message is first restored into the core's key space (``restore_messages``, whose dedupe
skips a message id the queue already holds); only then does :func:`finish` remove its
legacy entry and write its journal field, atomically. A crash between the two leaves the
legacy entry in place, and the next run's restore finds the id already in the new queue;
the journal makes sure that a second copy of one message (the original's races left some)
or a re-run never moves it twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from tta_agent_coordination.clients import RedisClient

__all__ = ["FINISH_SCRIPT", "FinishItem", "Finished", "SourceKind", "finish", "journal_value"]


class SourceKind(IntEnum):
    """How a legacy key holds its entries."""

    ZSET = 1
    HASH = 2
    """The reservation hash; its deadline zset (KEYS[3]) loses the token too."""
    LIST = 3


class Finished(IntEnum):
    """What :func:`finish` did with one entry."""

    GONE = 0
    """The legacy entry was no longer there (another run finished it): nothing changed."""
    MOVED = 1
    """Removed, and recorded as moved."""
    DUPLICATE = 2
    """A copy of a message the journal already records as moved: removed."""
    CONFLICT = 3
    """The journal records another message under this queue and id: kept in place."""


FINGERPRINT_CHARS = 64

# KEYS: 1 journal hash, 2 legacy key, 3 deadline zset (reservations; else KEYS[2] again).
# ARGV: 1 source kind, then per entry: member, journal field, fingerprint, journal value.
FINISH_SCRIPT = """
local kind = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 4 do
  local member, field, fp, value = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local prev = redis.call('HGET', KEYS[1], field)
  if prev and string.sub(prev, 1, 64) ~= fp then
    out[#out + 1] = 3
  else
    local removed
    if kind == 1 then
      removed = redis.call('ZREM', KEYS[2], member)
    elseif kind == 2 then
      removed = redis.call('HDEL', KEYS[2], member)
      redis.call('ZREM', KEYS[3], member)
    else
      removed = redis.call('LREM', KEYS[2], 1, member)
    end
    if removed == 0 then
      out[#out + 1] = 0
    elseif prev then
      out[#out + 1] = 2
    else
      redis.call('HSET', KEYS[1], field, value)
      out[#out + 1] = 1
    end
  end
end
return out
"""


@dataclass(frozen=True, slots=True)
class FinishItem:
    """One legacy entry to remove and record."""

    member: bytes | str
    field: str
    fingerprint: str
    value: str


def journal_value(fingerprint: str, moved_as: str, legacy_key: str) -> str:
    """The journal field's value: ``"{fingerprint} {moved_as} {legacy_key}"``."""
    return f"{fingerprint} {moved_as} {legacy_key}"


async def finish(
    redis: RedisClient,
    journal_key: str,
    kind: SourceKind,
    key: str,
    items: Sequence[FinishItem],
    *,
    deadlines_key: str | None = None,
) -> list[Finished]:
    """Remove ``items`` from legacy ``key`` and record them in the journal, atomically.

    Returns one :class:`Finished` per item, in order.
    """
    if not items:
        return []
    argv: list[Any] = [int(kind)]
    for item in items:
        argv += [item.member, item.field, item.fingerprint, item.value]
    keys = [journal_key, key, deadlines_key or key]
    raw: list[Any] = await redis.eval(FINISH_SCRIPT, len(keys), *keys, *argv)  # type: ignore[misc]
    return [Finished(int(flag)) for flag in raw]
