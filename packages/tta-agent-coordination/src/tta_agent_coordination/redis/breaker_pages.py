"""Shared circuit-breaker states for a view refreshed often (the dashboard).

Breaker hashes (``RedisBreakerStore``) have no index, so their names are found with
``SCAN``. :class:`BreakerDirectory` spreads that scan over the views: each read advances
the cursor by a bounded number of ``SCAN`` calls and reads the states of the names found
so far with one pipelined ``HMGET`` each, so no single view walks the whole keyspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tta_agent_coordination.clients import RedisClient, is_cluster
from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.topology import scan_pages

__all__ = ["BreakerDirectory", "BreakerRow", "find_breakers", "read_breaker_rows"]

_FIELDS = ("s", "g", "f", "u", "k", "i")
"""The fields of a breaker state hash (``breaker_common.lua``): state, generation,
consecutive failures, open-until (ms), probe successes, probes in flight."""


@dataclass(frozen=True)
class BreakerRow:
    """One shared breaker's state."""

    name: str
    state: str
    """``closed``, ``open`` or ``half_open``."""
    generation: int
    failures: int
    retry_after_s: float | None
    """Open: seconds until it half-opens (server clock); None otherwise."""
    probes_in_flight: int
    probe_successes: int


async def find_breakers(redis: RedisClient, keys: KeySpace) -> list[str]:
    """The names of every shared breaker under ``keys.prefix``, sorted.

    One full ``SCAN`` (of every primary on a Cluster): for a one-off read, not a view
    refreshed often (:class:`BreakerDirectory`).
    """
    names: set[str] = set()
    async for page in scan_pages(redis, match=keys.breaker_scan_pattern, count=500):
        for raw in page:
            name = keys.breaker_from_key(text(raw))
            if name is not None:
                names.add(name)
    return sorted(names)


async def read_breaker_rows(
    redis: RedisClient, keys: KeySpace, names: list[str]
) -> list[BreakerRow]:
    """The states of the breakers ``names``, in that order.

    A hash gone since its name was found (expired or deleted) is left out.
    """
    if not names:
        return []
    cluster = is_cluster(redis)
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hmget(keys.breaker_state(name), list(_FIELDS))
        if not cluster:
            pipe.time()
        replies: list[Any] = await pipe.execute()
    # A Cluster pipeline refuses keyless commands such as TIME: there it is a call of its own.
    seconds, micros = await redis.time() if cluster else replies.pop()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    rows: list[BreakerRow] = []
    for name, values in zip(names, replies, strict=True):
        s, g, f, u, k, i = (None if v is None else text(v) for v in values)
        if s is None:
            continue
        rows.append(
            BreakerRow(
                name=name,
                state=s,
                generation=int(g or 0),
                failures=int(f or 0),
                retry_after_s=max(int(u or 0) - now_ms, 0) / 1000 if s == "open" else None,
                probes_in_flight=int(i or 0),
                probe_successes=int(k or 0),
            )
        )
    return rows


class BreakerDirectory:
    """The names of the shared breakers under a prefix, found a few ``SCAN`` calls at a time."""

    def __init__(
        self,
        redis: RedisClient,
        keys: KeySpace,
        *,
        scan_calls: int = 4,
        scan_count: int = 1000,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._scan_calls = scan_calls
        self._scan_count = scan_count
        self._cursor = 0
        self._known: set[str] = set()
        self._round: set[str] = set()
        self.complete = False
        """Whether one whole pass over the keyspace has finished (every breaker seen)."""

    async def _advance(self) -> None:
        pattern = self._keys.breaker_scan_pattern
        for _ in range(self._scan_calls):
            cursor, found = await self._redis.scan(
                self._cursor, match=pattern, count=self._scan_count
            )
            self._cursor = int(cursor)
            for raw in found:
                name = self._keys.breaker_from_key(text(raw))
                if name is not None:
                    self._round.add(name)
                    self._known.add(name)
            if self._cursor == 0:
                # A full pass: forget names whose hash was not seen in it.
                self._known = set(self._round)
                self._round = set()
                self.complete = True
                return

    async def read(self) -> list[BreakerRow]:
        """Advance the scan a little, then the states of every breaker known, by name."""
        await self._advance()
        rows = await read_breaker_rows(self._redis, self._keys, sorted(self._known))
        self._known = {row.name for row in rows}  # forget hashes that expired or were deleted
        return rows
