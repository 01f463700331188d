"""Pages of the queue index and the flow of each queue (for the dashboard).

A view of 1,000 queues reads one page of the index (``SSCAN`` with a cursor) and then only
that page's queues: their ready streams' oldest waiting entry and how many entries they
ever received, in two pipelined round trips. ``queue_stats`` stays with the coordinator.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.keys import CONSUMER_GROUP, KeySpace

__all__ = [
    "MAX_QUEUE_PAGE",
    "QueueFlow",
    "QueuePage",
    "count_queues",
    "read_queue_flows",
    "read_queue_page",
]

MAX_QUEUE_PAGE = 200
"""The most queues one page asks the index for."""

_SCAN_CALLS = 8
"""SSCAN calls one page makes at most (a filter may need several to fill a page)."""

_FILTER_STEP = 1000
"""Index entries one filtered ``SSCAN`` step asks the server to walk."""

_CURSOR_RE = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,6})?$")
_GLOB = re.compile(r"([*?\[\]\\])")


@dataclass(frozen=True)
class QueuePage:
    """Queues of one index page (sorted by id within each ``SSCAN`` step) and the next cursor."""

    queues: list[AgentId]
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; None after the last."""


@dataclass(frozen=True)
class QueueFlow:
    """What moves through a queue, beyond its counts."""

    agent_id: AgentId
    oldest_ready_age_s: float | None
    """How long the oldest ready (not leased) message has waited; None when none waits."""
    entries_added: int
    """Entries ever added to the ready streams (sends, retries, replays), since the streams
    were created (recovery deletes the streams of an empty queue, which restarts it)."""


async def count_queues(redis: RedisClient, keys: KeySpace) -> int:
    """How many queues the index holds (``SCARD``)."""
    return int(await redis.scard(keys.queue_index))


async def read_queue_page(
    redis: RedisClient,
    keys: KeySpace,
    *,
    cursor: str = "0",
    count: int = 50,
    contains: str | None = None,
) -> QueuePage:
    """At most ``count`` queues of the index from ``cursor`` (``SSCAN``; at most 8 calls).

    ``contains`` keeps the queues whose id contains that text. A cursor is the ``SSCAN``
    cursor, with ``.<n>`` when the page ended inside one step's reply (the next page
    repeats that step and skips ``n``). As with every ``SSCAN``, a queue added or removed
    while paging may be missed or seen twice, and a page may hold fewer than ``count``.

    Raises:
        ConfigurationError: ``count`` is out of 1..MAX_QUEUE_PAGE or ``cursor`` is not a
            cursor.
    """
    if not 1 <= count <= MAX_QUEUE_PAGE:
        raise ConfigurationError(f"count must be within 1..{MAX_QUEUE_PAGE}, got {count}")
    if not _CURSOR_RE.fullmatch(cursor):
        raise ConfigurationError(f"invalid queue page cursor {cursor!r}")
    match = None if not contains else "*" + _GLOB.sub(r"\\\1", contains) + "*"
    # With a filter the server still walks every element it scans but returns only the
    # matches, so each step may walk further: the reply stays small.
    step = count if match is None else max(count, _FILTER_STEP)
    head, _, skipped = cursor.partition(".")
    position, skip = int(head), int(skipped or 0)
    found: list[AgentId] = []
    for _ in range(_SCAN_CALLS):
        following, members = await redis.sscan(keys.queue_index, position, match=match, count=step)
        batch = sorted({a for a in map(_agent, members) if a is not None}, key=str)[skip:]
        room = count - len(found)
        if len(batch) > room:
            # The step returned more than the page holds: the next page repeats this
            # step (same cursor, same reply while the index is unchanged) and skips
            # what this page showed.
            found += batch[:room]
            return QueuePage(found, f"{position}.{skip + room}")
        found += batch
        position, skip = int(following), 0
        if position == 0 or len(found) >= count:
            break
    return QueuePage(found, None if position == 0 else str(position))


def _agent(member: Any) -> AgentId | None:
    try:
        return AgentId.parse(text(member))
    except ValueError:
        return None


def _fields(reply: Any) -> dict[str, Any]:
    if not isinstance(reply, dict):
        return {}
    items: list[tuple[Any, Any]] = list(reply.items())  # pyright: ignore[reportUnknownArgumentType]
    return {text(k): v for k, v in items}


def _entry_ms(entry_id: Any) -> int:
    return int(text(entry_id).partition("-")[0])


async def read_queue_flows(
    redis: RedisClient, keys: KeySpace, agent_ids: Sequence[AgentId]
) -> dict[AgentId, QueueFlow]:
    """The :class:`QueueFlow` of each queue, in two pipelined round trips for them all.

    Ages are measured by the server clock (``TIME``), from the time an entry became
    ready (its stream entry id).
    """
    if not agent_ids:
        return {}
    streams = [(a, s) for a in agent_ids for s in keys.queue(a).ready]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.time()
        for _, stream in streams:
            pipe.xinfo_stream(stream)
            pipe.xinfo_groups(stream)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    seconds, micros = replies[0]
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    added: dict[AgentId, int] = dict.fromkeys(agent_ids, 0)
    waiting: list[tuple[AgentId, str, str]] = []
    for index, (agent_id, stream) in enumerate(streams):
        info, groups = replies[1 + 2 * index], replies[2 + 2 * index]
        if isinstance(info, Exception) or isinstance(groups, Exception):
            continue  # no such stream (yet, or deleted by recovery): nothing in it
        info_fields = _fields(info)
        added[agent_id] += int(info_fields.get("entries-added") or 0)
        group_list: list[Any] = list(groups or [])
        for group in group_list:
            g = _fields(group)
            if text(g.get("name")) != CONSUMER_GROUP:
                continue
            if int(info_fields.get("length") or 0) > int(g.get("pending") or 0):
                waiting.append((agent_id, stream, text(g.get("last-delivered-id"))))
    oldest: dict[AgentId, int] = {}
    if waiting:
        async with redis.pipeline(transaction=False) as pipe:
            for _, stream, last in waiting:
                pipe.xrange(stream, f"({last}", "+", count=1)
            firsts: list[Any] = await pipe.execute(raise_on_error=False)
        for (agent_id, _, _), entries in zip(waiting, firsts, strict=True):
            if isinstance(entries, Exception) or not entries:
                continue
            ms = _entry_ms(entries[0][0])
            oldest[agent_id] = min(ms, oldest.get(agent_id, ms))
    return {
        a: QueueFlow(
            agent_id=a,
            oldest_ready_age_s=(max(now_ms - oldest[a], 0) / 1000) if a in oldest else None,
            entries_added=added[a],
        )
        for a in agent_ids
    }
