"""``StreamWaiter``: many tasks wait for new entries of many streams on one blocked read.

A blocking receive used to run its own ``XREAD BLOCK``, so 1,000 idle workers held 1,000
connections. Here every waiter of a process (of one coordinator and its client) registers
the streams it waits on, with the id of the last entry it has seen; one reader task per
group of streams runs a single ``XREAD BLOCK`` over all of them on one connection and
wakes each waiter whose streams got a newer entry. A waiter also wakes at its deadline.

How the shared read is re-armed when a waiter joins with a stream the in-flight read does
not cover (or covers from a later id): the joiner sends ``CLIENT UNBLOCK <reader id>``,
which ends the blocked read at once (one round trip, no key written, works under
``maxmemory``), and the reader re-issues it with the new set. Waking costs one round trip
more than a private ``XREAD``, and only for a stream not yet covered: a stream stays in
the read ``linger_s`` after its last waiter left, so a worker that waits again finds it
armed and wakes without any re-arm. Where ``CLIENT UNBLOCK`` is not allowed (an ACL user
without ``@connection``/``@admin``), the reader falls back to re-issuing its read every
``rearm_interval_s`` (a join then waits that long, at most, before it is covered). No
wake-up is ever lost either way: a read from the waiter's last id returns at once if an
entry arrived in between.

Keys of one read share a Redis Cluster hash slot group (:func:`slot_group`); on a
standalone server every key is in one group and a reader takes up to
``max_keys_per_read`` keys (a read of N keys costs O(N) on both sides, paid at each
re-arm and each wake; the default, 8,192, keeps 1,000 idle workers, 4,004 streams, on
one connection: see ``scripts/bench_xread_keys.py`` and ``docs/worker.md``).

A failing read wakes every waiter of its reader with the error (a
``CoordinationError``), then the reader backs off (50 ms doubling to 2 s) before it
reads again: never a hot loop. See ``docs/worker.md`` ("Waiting for messages").
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisClusterException, RedisError, ResponseError

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import (
    ConfigurationError,
    CoordinationError,
    CoordinatorUnavailableError,
)
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.redis.interrupts import InterruptWatches
from tta_agent_coordination.redis.stream_reads import (
    SharedRead,
    Waiter,
    parse_id,
    slot_group,
)
from tta_agent_coordination.redis.topology import NodeConnections, node_connections

__all__ = [
    "DEFAULT_MAX_KEYS_PER_READ",
    "RunFn",
    "StreamWaiter",
    "WaiterStats",
    "parse_id",
    "slot_group",
]

DEFAULT_MAX_KEYS_PER_READ = 8_192
"""Most streams one shared read covers by default.

1,000 idle workers wait on 4,004 streams (their own queue's three ready streams and wake
stream each, and their type queue's four): one read, one connection. Measured on Redis
7.0 on a loaded 2-core machine (``scripts/bench_xread_keys.py``): a wake of a read over
4,096 streams reaches the waiter in 1.3 ms (p50) and costs Redis about 3 ms of CPU (the
read is re-issued over every stream), 8,192 streams 4 ms and 6.5 ms; a blocked read
costs nothing while idle. Past 8,192 the O(N) re-issue (16 ms of Redis CPU at 16,384) is
spread over another reader instead.
"""

RunFn = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""Runs one Redis call under a guard, failures as ``CoordinationError`` (``core.call``)."""

_BACKOFF_MIN_S = 0.05
_BACKOFF_MAX_S = 2.0
_KICK_RETRIES_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
"""Pauses between ``CLIENT UNBLOCK`` attempts that found the read not yet blocked."""


@dataclass(frozen=True, slots=True)
class WaiterStats:
    """What a ``StreamWaiter`` holds now (for tests, metrics and benchmarks)."""

    waiters: int
    """Waits in progress."""
    readers: int
    """Reader tasks running (each holds one connection while it runs)."""
    streams: int
    """Streams in the shared reads (with a waiter, or lingering after the last one)."""
    unblock: bool
    """False once ``CLIENT UNBLOCK`` was refused: re-arming is then periodic."""


class StreamWaiter:
    """Waits for new entries on many streams with one blocked ``XREAD`` per reader.

    Args:
        redis: the asyncio client (not owned: never closed here); readers take their
            connection from its pool and give it back when they stop.
        run: runs each shared read under a guard and turns failures into
            ``CoordinationError`` (the coordinator passes its ``core.call``).
        max_block_s: longest single blocked read (kept under the socket timeout).
        linger_s: how long a stream stays in the shared read after its last waiter
            left (a waiter that comes back within it wakes without a re-arm), and how
            long a reader with no waiter keeps its connection.
        rearm_interval_s: longest read when ``CLIENT UNBLOCK`` is refused (the most a
            new waiter can wait before its streams are covered).
        max_keys_per_read: most streams one read covers; more open another reader.
            A wake or re-arm re-issues the read over all of them (measured on Redis
            7.0: about 0.7 µs of Redis CPU per stream, 3 ms for 4,096 streams), so a
            process whose waiters see steady traffic may prefer a lower limit.

    Raises:
        ConfigurationError: a setting is out of range.
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        run: RunFn | None = None,
        max_block_s: float = 5.0,
        linger_s: float = 2.0,
        rearm_interval_s: float = 0.1,
        max_keys_per_read: int = DEFAULT_MAX_KEYS_PER_READ,
    ) -> None:
        for name, value in (
            ("max_block_s", max_block_s),
            ("linger_s", linger_s),
            ("rearm_interval_s", rearm_interval_s),
            ("max_keys_per_read", max_keys_per_read),
        ):
            if not value > 0:
                raise ConfigurationError(f"{name} must be > 0, got {value}")
        self._redis = redis
        self._run: RunFn = run or _plain_run
        self._max_block_s = max_block_s
        self._linger_s = linger_s
        self._rearm_s = rearm_interval_s
        self._max_keys = int(max_keys_per_read)
        self._readers: list[SharedRead] = []
        self._reader_of: dict[str, SharedRead] = {}
        self._waiters = 0
        self._kicks: set[asyncio.Task[None]] = set()
        self._unblock = True
        self._closed = False
        self._interrupts = InterruptWatches(linger_s)
        self._log = get_logger(__name__)

    @property
    def stats(self) -> WaiterStats:
        """Waits, readers and streams now."""
        return WaiterStats(
            waiters=self._waiters,
            readers=sum(1 for r in self._readers if r.task is not None and not r.task.done()),
            streams=sum(len(r.watches) for r in self._readers),
            unblock=self._unblock,
        )

    async def wait(
        self,
        streams: Mapping[str, str],
        timeout: float,  # noqa: ASYNC109
        interrupt: asyncio.Event | None = None,
    ) -> set[str]:
        """Wait until one of ``streams`` has an entry newer than its given id.

        Args:
            streams: stream key → id of the last entry the caller has seen
                (``"<ms>-<seq>"``; ``"0-0"`` for an empty stream).
            timeout: seconds to wait at most.
            interrupt: ends the wait at once (with nothing) when set.

        Returns:
            The keys that got a newer entry; empty when the deadline passed first or
            ``interrupt`` was set.

        Raises:
            ConfigurationError: no stream, a bad id, or a negative timeout.
            CoordinationError: the waiter is closed, or the shared read failed (Redis
                down, breaker open); the caller backs off as for any Redis failure.
        """
        if not streams:
            raise ConfigurationError("wait needs at least one stream")
        if timeout < 0:
            raise ConfigurationError(f"timeout must be >= 0 seconds, got {timeout}")
        if self._closed:
            raise CoordinationError("the stream waiter is closed")
        ids = {key: parse_id(value) for key, value in streams.items()}
        if timeout == 0 or (interrupt is not None and interrupt.is_set()):
            return set()
        loop = asyncio.get_running_loop()
        waiter = Waiter(loop.create_future(), ids)
        if interrupt is not None:
            self._interrupts.add(interrupt, waiter.future)
        kick: list[SharedRead] = []
        self._waiters += 1
        try:
            for key, last in ids.items():
                reader = self._reader_for(key)
                if reader.needs_rearm(key, last) and reader.blocked and not reader.kicked:
                    reader.kicked = True
                    kick.append(reader)
                reader.add(waiter, key, last)
                waiter.readers[key] = reader
                self._start(reader)
            for reader in set(waiter.readers.values()):
                reader.waiting += 1
                reader.cancel_idle_kick()
            for reader in kick:
                self._kick_soon(reader)
            try:
                async with asyncio.timeout(timeout):
                    return await waiter.future
            except TimeoutError:
                return set()
        finally:
            if interrupt is not None:
                self._interrupts.remove(interrupt, waiter.future)
            self._waiters -= 1
            now = loop.time()
            for key, reader in waiter.readers.items():
                reader.remove(waiter, key, now)
            for reader in set(waiter.readers.values()):
                reader.waiting -= 1
                if not reader.waiting and reader.idle_kick is None:
                    # The last waiter left: end the long read if none comes back within
                    # linger_s, so that the reader then gives its connection back. Not at
                    # once: a worker waits again right after each message, and a kick
                    # per message would cost a CLIENT UNBLOCK and a read more.
                    reader.idle_kick = loop.call_later(self._linger_s, self._end_idle, reader)

    async def aclose(self) -> None:
        """Stop every reader (their connections go back to the pool); waits fail."""
        self._closed = True
        self._interrupts.close()
        readers, self._readers = self._readers, []
        self._reader_of.clear()
        closed = CoordinationError("the stream waiter was closed")
        for reader in readers:
            reader.cancel_idle_kick()
            reader.fail(closed)
            if reader.task is not None:
                reader.task.cancel()
        kicks, self._kicks = self._kicks, set()
        for task in kicks:
            task.cancel()
        await asyncio.gather(
            *(r.task for r in readers if r.task is not None), *kicks, return_exceptions=True
        )

    # --- readers ------------------------------------------------------------------------

    def _reader_for(self, key: str) -> SharedRead:
        reader = self._reader_of.get(key)
        if reader is not None:
            return reader
        group = slot_group(self._redis, key)
        for candidate in self._readers:
            if candidate.group == group and len(candidate.watches) < self._max_keys:
                reader = candidate
                break
        else:
            reader = SharedRead(group)
            self._readers.append(reader)
        self._reader_of[key] = reader
        return reader

    def _start(self, reader: SharedRead) -> None:
        if reader.task is None or reader.task.done():
            reader.task = asyncio.get_running_loop().create_task(
                self._read_loop(reader), name="stream-waiter-reader"
            )

    def _end_idle(self, reader: SharedRead) -> None:
        """Kick a read that has had no waiter for ``linger_s`` (see ``wait``)."""
        reader.idle_kick = None
        if not reader.waiting and reader.blocked and not reader.kicked:
            reader.kicked = True
            self._kick_soon(reader)

    def _kick_soon(self, reader: SharedRead) -> None:
        """Kick in a task of its own: a waiter never waits on (or is delayed by) a kick."""
        if reader.client_id is None or not self._unblock or self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._kick(reader), name="stream-waiter-kick")
        self._kicks.add(task)
        task.add_done_callback(self._kicks.discard)

    async def _kick(self, reader: SharedRead) -> None:
        """End the reader's blocked read so that it re-arms with the new streams.

        The reader marks itself blocked just before it sends its ``XREAD``, so the
        ``CLIENT UNBLOCK`` can reach Redis first and find nothing to unblock (it then
        answers 0). The kick tries again, briefly, while that same read is still on:
        else the new streams would wait out the whole read (``max_block_s``).
        """
        client_id = reader.client_id
        if client_id is None or not self._unblock:
            return
        read = reader.reads
        try:
            # On a Cluster, to the node whose connection is blocked (any node otherwise).
            node = await node_connections(self._redis, reader.group)
            for delay in _KICK_RETRIES_S:
                if await node.execute_command("CLIENT", "UNBLOCK", client_id):
                    return
                await asyncio.sleep(delay)
                if reader.reads != read or not reader.blocked or reader.client_id != client_id:
                    return  # that read ended anyway; the next one covers the new streams
            self._log.debug("stream_waiter_kick_missed", client_id=client_id)
        except ResponseError as exc:
            # NOPERM or an unknown command: re-arm periodically from now on.
            self._unblock = False
            self._log.warning("stream_waiter_unblock_refused", error=str(exc))
        except (RedisError, RedisClusterException, OSError) as exc:
            self._log.debug("stream_waiter_unblock_failed", error=str(exc))

    async def _read_loop(self, reader: SharedRead) -> None:
        loop = asyncio.get_running_loop()
        pool: NodeConnections | None = None
        conn: Any = None
        in_flight = False
        failures = 0
        try:
            while True:
                self._forget(reader, reader.drop_lingering(loop.time(), self._linger_s))
                if not reader.watches:
                    return
                block_s = self._max_block_s if self._unblock else self._rearm_s
                if not reader.waiting:
                    block_s = min(block_s, self._linger_s)
                try:
                    if conn is None:
                        # Asked again after each failure: on a Cluster, the slot's node
                        # may have changed (a failover).
                        find = functools.partial(node_connections, self._redis, reader.group)
                        pool = link = await self._run("receive", find)
                        conn = await self._run("receive", link.get_connection)
                        reader.client_id = None
                        if self._unblock:
                            reader.client_id = await self._run(
                                "receive", functools.partial(self._client_id, conn)
                            )
                    data = reader.command(max(1, int(block_s * 1000)))
                    reader.kicked = False
                    reader.reads += 1
                    reader.blocked = in_flight = True
                    read = functools.partial(_xread, conn, data, block_s)
                    reply = await self._run("receive", read)
                    reader.blocked = in_flight = False
                except CoordinationError as exc:
                    reader.blocked = in_flight = False
                    reader.disarm()
                    failures += 1
                    reader.fail(exc)
                    if conn is not None and pool is not None:
                        conn, dead = None, conn
                        with contextlib.suppress(Exception):
                            await dead.disconnect()
                        await pool.release(dead)
                    await asyncio.sleep(min(_BACKOFF_MAX_S, _BACKOFF_MIN_S * 2 ** (failures - 1)))
                    continue
                failures = 0
                reader.disarm()
                woke = reader.deliver(reply)
                self._forget(reader, woke.lingering)
                if woke.waiters and woke.waiters >= reader.waiting:
                    # Every waiter woke: re-arm when one joins again (a worker waits
                    # again after its message), not now, which would put this read's
                    # round trip on the woken waiters' path to their messages. Entries
                    # added meanwhile are not missed: the read starts after known ids.
                    await self._hold_off(reader, loop)
        except Exception as exc:  # a bug must not leave waiters hanging until their deadline
            self._log.exception("stream_waiter_reader_failed")
            reader.fail(CoordinationError(f"stream waiter reader failed: {exc!r}"))
            raise
        finally:
            # Synchronous part first: a waiter joining meanwhile starts a new reader.
            reader.blocked = False
            if reader.task is asyncio.current_task():
                reader.task = None
            if not reader.waiting:
                self._retire(reader)
            if conn is not None and pool is not None:
                if in_flight:
                    # Cancelled mid-read: the reply would arrive on a reused connection.
                    with contextlib.suppress(Exception):
                        await conn.disconnect()
                await pool.release(conn)

    async def _hold_off(self, reader: SharedRead, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until a waiter joins ``reader``, or ``linger_s`` passes."""
        reader.joined = joined = loop.create_future()
        try:
            async with asyncio.timeout(self._linger_s):
                await joined
        except TimeoutError:
            pass
        finally:
            reader.joined = None

    def _forget(self, reader: SharedRead, keys: list[str]) -> None:
        for key in keys:
            if self._reader_of.get(key) is reader:
                del self._reader_of[key]

    def _retire(self, reader: SharedRead) -> None:
        reader.cancel_idle_kick()
        if reader in self._readers:
            self._readers.remove(reader)
        self._forget(reader, list(reader.watches))
        reader.watches.clear()

    async def _client_id(self, conn: Any) -> int | None:
        await conn.send_command("CLIENT", "ID")
        try:
            return int(await conn.read_response())
        except ResponseError as exc:
            self._unblock = False
            self._log.warning("stream_waiter_unblock_refused", error=str(exc))
            return None


async def _xread(conn: Any, data: bytes, block_s: float) -> Any:
    await conn.send_packed_command(data, check_health=False)
    timeout = conn.socket_timeout
    return await conn.read_response(timeout=block_s + (timeout if timeout else 5.0))


async def _plain_run(operation: str, fn: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await fn()
    except (RedisError, OSError, TimeoutError) as exc:
        raise CoordinatorUnavailableError(f"{operation} failed: Redis error: {exc}") from exc
