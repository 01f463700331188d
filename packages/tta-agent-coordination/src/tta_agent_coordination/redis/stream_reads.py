"""The state behind ``StreamWaiter``: who waits on which stream, and the shared read.

Pure bookkeeping, no I/O: a :class:`SharedRead` holds the streams of one blocked
``XREAD`` (a :class:`Watch` each, with its waiters and the id the read starts after),
packs the command, and turns a reply into wake-ups. ``stream_waiter.py`` runs it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from redis.crc import key_slot

from tta_agent_coordination.errors import ConfigurationError

__all__ = [
    "Delivered",
    "SharedRead",
    "StreamId",
    "Waiter",
    "Watch",
    "bulk",
    "pairs",
    "parse_id",
    "slot_group",
    "text_of",
]

StreamId = tuple[int, int]
"""An entry id as ``(milliseconds, sequence)``: ordered as Redis orders entry ids."""


def slot_group(redis: Any, key: str) -> int | None:
    """The group of keys ``key`` may share one ``XREAD`` with.

    Its hash slot on a Cluster client (a multi-key command must stay in one slot), None
    (one group) on a standalone client.
    """
    return key_slot(key.encode()) if hasattr(redis, "nodes_manager") else None


def parse_id(value: str) -> StreamId:
    """``"<ms>-<seq>"`` or ``"<ms>"`` as a comparable tuple.

    Raises:
        ConfigurationError: not a concrete entry id (``$``, ``>`` or garbage).
    """
    ms, sep, seq = value.partition("-")
    try:
        parsed = (int(ms), int(seq) if sep else 0)
    except ValueError:
        parsed = (-1, -1)
    if parsed[0] < 0 or parsed[1] < 0:
        raise ConfigurationError(f"stream id must be '<ms>-<seq>' or '<ms>', got {value!r}")
    return parsed


def pairs(reply: Any) -> Any:
    """The (key, entries) pairs of an ``XREAD`` reply: RESP2 list or RESP3 map."""
    if isinstance(reply, dict):
        return cast("dict[Any, Any]", reply).items()
    return reply or ()


def text_of(value: Any) -> str:
    """``value`` as text (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def bulk(value: str) -> bytes:
    """``value`` as a RESP bulk string."""
    raw = value.encode()
    return b"$%d\r\n%s\r\n" % (len(raw), raw)


class Delivered(NamedTuple):
    """What :meth:`SharedRead.deliver` did with a reply."""

    waiters: int
    """Waiters woken."""
    lingering: list[str]
    """Streams without a waiter that got an entry (they leave the read)."""


class Waiter:
    """One ``wait()``: its future, last seen ids, the reads it is in, the streams that woke it."""

    __slots__ = ("future", "ids", "readers", "woken")

    def __init__(self, future: asyncio.Future[set[str]], ids: dict[str, StreamId]) -> None:
        self.future = future
        self.ids = ids
        self.woken: set[str] = set()
        self.readers: dict[str, SharedRead] = {}


@dataclass(slots=True)
class Watch:
    """One stream of a reader: its waiters and the id the read starts after."""

    piece: bytes
    cursor: StreamId
    waiters: set[Waiter] = field(default_factory=set[Waiter])
    armed: StreamId | None = None
    """The id the in-flight read covers this stream from (None: not covered)."""
    idle_since: float = 0.0


class SharedRead:
    """One blocked ``XREAD`` over a group of streams, on one connection of the pool."""

    def __init__(self, group: int | None) -> None:
        self.group = group
        self.watches: dict[str, Watch] = {}
        self.client_id: int | None = None
        self.waiting = 0
        """Waits registered with this reader (each counted once)."""
        self.blocked = False
        self.kicked = False
        self.reads = 0
        """Reads issued so far: a kick knows whether the read it aimed at is still on."""
        self.task: asyncio.Task[None] | None = None
        self.joined: asyncio.Future[None] | None = None
        """Set by the next waiter to join, while the reader holds off its re-arm."""
        self.idle_kick: asyncio.TimerHandle | None = None
        """Ends the long read once the reader has had no waiter for its linger time."""

    def cancel_idle_kick(self) -> None:
        """Call off the pending idle kick, if any (a waiter came, or the read ends)."""
        if self.idle_kick is not None:
            self.idle_kick.cancel()
            self.idle_kick = None

    def needs_rearm(self, key: str, last: StreamId) -> bool:
        """True when the in-flight read does not cover ``key`` from ``last`` or earlier."""
        watch = self.watches.get(key)
        return watch is None or watch.armed is None or last < watch.armed

    def add(self, waiter: Waiter, key: str, last: StreamId) -> None:
        """Register ``waiter`` on ``key`` (the read then starts at ``last`` at the latest)."""
        watch = self.watches.get(key)
        if watch is None:
            watch = self.watches[key] = Watch(piece=bulk(key), cursor=last)
        elif last < watch.cursor or (not watch.waiters and last > watch.cursor):
            # Alone on a lingering stream, the waiter's own id is the right start.
            watch.cursor = last
        watch.waiters.add(waiter)
        if self.joined is not None and not self.joined.done():
            self.joined.set_result(None)

    def remove(self, waiter: Waiter, key: str, now: float) -> None:
        """Unregister ``waiter`` from ``key``; a stream left alone lingers from ``now``."""
        watch = self.watches.get(key)
        if watch is not None:
            watch.waiters.discard(waiter)
            if not watch.waiters:
                watch.idle_since = now

    def command(self, block_ms: int) -> bytes:
        """The packed ``XREAD COUNT 1 BLOCK <ms> STREAMS k... id...`` (keys pre-encoded)."""
        watches = list(self.watches.values())
        head = b"*%d\r\n$5\r\nXREAD\r\n$5\r\nCOUNT\r\n$1\r\n1\r\n$5\r\nBLOCK\r\n%s" % (
            6 + 2 * len(watches),
            bulk(str(block_ms)),
        )
        parts = [head, b"$7\r\nSTREAMS\r\n"]
        parts.extend(w.piece for w in watches)
        for w in watches:
            w.armed = w.cursor
            parts.append(bulk(f"{w.cursor[0]}-{w.cursor[1]}"))
        return b"".join(parts)

    def disarm(self) -> None:
        """The read ended: no stream is covered until the next one."""
        for watch in self.watches.values():
            watch.armed = None

    def deliver(self, reply: Any) -> Delivered:
        """Wake the waiters of every stream with an entry newer than their last id.

        Returns how many waiters woke, and the lingering streams (no waiter) that got an
        entry: they leave the read, or a busy queue's backlog would be walked one entry
        per read.
        """
        # RESP2: [[key, entries], ...]; RESP3 (and FakeRedis): {key: entries}.
        items: Any = pairs(reply)
        touched: set[Waiter] = set()
        dropped: list[str] = []
        for key_raw, entries in items:
            key = text_of(key_raw)
            watch = self.watches.get(key)
            if watch is None or not entries:
                continue
            if not watch.waiters:
                del self.watches[key]
                dropped.append(key)
                continue
            entry = parse_id(text_of(entries[-1][0]))
            remaining: list[StreamId] = []
            for waiter in watch.waiters:
                if waiter.ids[key] < entry:
                    waiter.woken.add(key)
                    touched.add(waiter)
                else:
                    remaining.append(waiter.ids[key])
            watch.cursor = min(remaining) if remaining else entry
        woke = 0
        for waiter in touched:
            if not waiter.future.done():
                waiter.future.set_result(set(waiter.woken))
                woke += 1
        return Delivered(woke, dropped)

    def fail(self, exc: BaseException) -> None:
        """Wake every waiter of this read with ``exc``."""
        for watch in self.watches.values():
            for waiter in watch.waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(exc)

    def drop_lingering(self, now: float, linger_s: float) -> list[str]:
        """Remove the streams without a waiter for ``linger_s``; their keys."""
        stale = [
            k for k, w in self.watches.items() if not w.waiters and now - w.idle_since >= linger_s
        ]
        for key in stale:
            del self.watches[key]
        return stale
