"""Handing events to a store: synchronously, or through a bounded write-behind buffer.

The coordinator and the registry hand every lifecycle change to a store through a
:class:`StoreWriter`, either synchronously (``durability="sync"``) or through a bounded
write-behind :class:`WriteBehindBatcher` (``durability="async"``) that never drops an
event. See ``docs/durability.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.store.errors import (
    StoreError,
    StorePayloadError,
    StoreUnavailableError,
)
from tta_agent_coordination.store.interface import StoreMetrics

__all__ = ["BatcherStats", "Durability", "StoreWriter", "WriteBehindBatcher"]

E = TypeVar("E")

# The logger of the store module this code came from, so log filters keep working.
_LOGGER = "tta_agent_coordination.store"


class Durability(StrEnum):
    """How a coordinator writes to its store.

    ``SYNC``: a send returns ``delivered=True`` only once the store has recorded it.
    ``ASYNC``: events go through a bounded write-behind batcher (much faster; a crash of
    the process can lose the events of its last flush interval, a Redis loss cannot).
    """

    ASYNC = "async"
    SYNC = "sync"


class BatcherStats(BaseModel):
    """Counters of a :class:`WriteBehindBatcher` (its metrics)."""

    pending: int = 0
    written: int = 0
    batches: int = 0
    write_failures: int = 0
    backpressure_waits: int = 0
    rejected: int = 0


class WriteBehindBatcher(Generic[E]):
    """A bounded buffer that writes items in batches, by size or after a short interval.

    It never drops an item: a failed write is retried (with backoff) until it succeeds,
    and a producer that finds the buffer full waits (backpressure, logged and counted)
    until there is room. Only an item the writer rejects as unstorable
    (:class:`StorePayloadError`, after trying it on its own) is logged in full and counted
    as ``rejected`` instead of blocking everything behind it.

    Args:
        write: writes one batch, all or nothing.
        max_pending: most items accepted and not yet written.
        batch_size: most items per write; a full batch is written at once.
        flush_interval_s: how long a partial batch waits for more items.
        retry_max_s: longest pause between two attempts of a failing write.
        name: names the batcher in logs.
        metrics: optional :class:`StoreMetrics`.
    """

    def __init__(
        self,
        write: Callable[[list[E]], Awaitable[None]],
        *,
        max_pending: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.05,
        retry_max_s: float = 5.0,
        name: str = "store",
        metrics: StoreMetrics | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ConfigurationError(f"batch_size must be > 0, got {batch_size}")
        if max_pending < batch_size:
            raise ConfigurationError(
                f"max_pending must be >= batch_size ({batch_size}), got {max_pending}"
            )
        if flush_interval_s < 0:
            raise ConfigurationError(f"flush_interval_s must be >= 0, got {flush_interval_s}")
        if retry_max_s <= 0:
            raise ConfigurationError(f"retry_max_s must be > 0, got {retry_max_s}")
        self._write = write
        self._max = max_pending
        self._batch = batch_size
        self._interval = flush_interval_s
        self._retry_max = retry_max_s
        self._metrics = metrics
        self._buf: deque[E] = deque()
        self._inflight = 0
        self._nonempty = asyncio.Event()
        self._full = asyncio.Event()
        self._space = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._flushing = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._stats = BatcherStats()
        self._log = get_logger(_LOGGER, batcher=name)

    @property
    def pending(self) -> int:
        """Items accepted and not yet written."""
        return len(self._buf) + self._inflight

    @property
    def stats(self) -> BatcherStats:
        """A snapshot of the counters."""
        return self._stats.model_copy(update={"pending": self.pending})

    async def put(self, items: Sequence[E]) -> None:
        """Accept ``items`` for writing; waits while the buffer is full (backpressure).

        Raises:
            StoreError: the batcher is closed.
        """
        if self._closed:
            raise StoreError("the store writer is closed; events can no longer be accepted")
        if not items:
            return
        self._ensure_task()
        # A batch larger than the whole buffer is still accepted into an empty one, so
        # that it cannot wait forever.
        if self.pending and self.pending + len(items) > self._max:
            self._stats.backpressure_waits += 1
            if self._metrics is not None:
                self._metrics.inc_store_backpressure()
            self._log.warning(
                "store_backpressure", pending=self.pending, max_pending=self._max, adding=len(items)
            )
            while self.pending and self.pending + len(items) > self._max:
                self._space.clear()
                await self._space.wait()
        self._buf.extend(items)
        self._idle.clear()
        self._nonempty.set()
        if len(self._buf) >= self._batch:
            self._full.set()
        if self._metrics is not None:
            self._metrics.set_store_pending(self.pending)

    async def flush(self) -> None:
        """Wait until every item accepted so far is written."""
        if self._idle.is_set():
            return
        self._ensure_task()
        self._flushing += 1
        self._full.set()
        try:
            await self._idle.wait()
        finally:
            self._flushing -= 1

    async def aclose(self, timeout_s: float | None = None) -> None:
        """Stop accepting items, write everything pending, and stop.

        Raises:
            StoreUnavailableError: the pending items could not be written within
                ``timeout_s`` seconds (they are reported, not silently dropped).
        """
        self._closed = True
        try:
            if timeout_s is None:
                await self.flush()
            else:
                try:
                    await asyncio.wait_for(self.flush(), timeout_s)
                except TimeoutError:
                    raise StoreUnavailableError(
                        f"{self.pending} store events could not be written within {timeout_s}s "
                        "of closing; the store is unreachable"
                    ) from None
        finally:
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
            self._task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._log.error("store_writer_crashed", error=repr(task.exception()))

    async def _run(self) -> None:
        while True:
            await self._nonempty.wait()
            if len(self._buf) < self._batch and not self._flushing and self._interval > 0:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._interval)
            batch = [self._buf.popleft() for _ in range(min(self._batch, len(self._buf)))]
            self._inflight = len(batch)
            try:
                await self._write_batch(batch)
            except BaseException:
                # Cancelled mid-write: keep the batch, in order, for whoever flushes next.
                self._buf.extendleft(reversed(batch))
                raise
            finally:
                self._inflight = 0
            if not self._buf:
                self._nonempty.clear()
                self._idle.set()
            self._space.set()
            if self._metrics is not None:
                self._metrics.set_store_pending(self.pending)

    async def _write_batch(self, batch: list[E]) -> None:
        delay = 0.05
        failing = False
        while True:
            try:
                await self._write(batch)
            except StorePayloadError as exc:
                await self._write_singly(batch, exc)
                return
            except Exception as exc:
                self._stats.write_failures += 1
                if not failing:
                    self._log.error(
                        "store_write_failed", error=str(exc), batch=len(batch), retry_in=delay
                    )
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            if failing:
                self._log.info("store_write_recovered", batch=len(batch))
            self._stats.written += len(batch)
            self._stats.batches += 1
            return

    async def _write_singly(self, batch: list[E], cause: StorePayloadError) -> None:
        if len(batch) == 1:
            self._stats.rejected += 1
            self._log.error("store_event_rejected", error=str(cause), item=repr(batch[0]))
            return
        for item in batch:
            await self._write_batch([item])


class StoreWriter(Generic[E]):
    """How a component hands events to a store: synchronously or write-behind.

    In ``sync`` mode :meth:`record` writes before returning; an ``essential`` write that
    fails raises, any other falls back to the write-behind buffer (so it is still never
    lost). In ``async`` mode every event goes through the buffer.
    """

    def __init__(
        self,
        write: Callable[[list[E]], Awaitable[None]],
        durability: Durability | str,
        *,
        max_pending: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.05,
        name: str = "store",
        metrics: StoreMetrics | None = None,
    ) -> None:
        try:
            self._durability = Durability(durability)
        except ValueError:
            raise ConfigurationError(
                f"durability must be 'async' or 'sync', got {durability!r}"
            ) from None
        self._write = write
        self._batcher = WriteBehindBatcher(
            write,
            max_pending=max_pending,
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            name=name,
            metrics=metrics,
        )
        self._log = get_logger(_LOGGER, writer=name)

    @property
    def durability(self) -> Durability:
        """The write mode."""
        return self._durability

    @property
    def stats(self) -> BatcherStats:
        """The write-behind buffer's counters."""
        return self._batcher.stats

    async def record(self, events: list[E], *, essential: bool = False) -> None:
        """Hand ``events`` to the store (see the class docstring).

        Raises:
            StoreError: in ``sync`` mode, an ``essential`` write failed (nothing of it was
                written).
        """
        if not events:
            return
        if self._durability is Durability.ASYNC:
            await self._batcher.put(events)
            return
        try:
            await self._write(events)
        except StoreError as exc:
            if essential:
                raise
            self._log.warning("store_sync_write_deferred", error=str(exc), events=len(events))
            await self._batcher.put(events)

    async def flush(self) -> None:
        """Wait until every event handed over so far is written."""
        await self._batcher.flush()

    async def aclose(self, timeout_s: float | None = 30.0) -> None:
        """Write everything pending, then stop (see :meth:`WriteBehindBatcher.aclose`)."""
        await self._batcher.aclose(timeout_s)
