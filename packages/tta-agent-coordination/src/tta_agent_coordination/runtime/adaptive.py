"""How much a worker leases per read and how many handlers it runs: its adaptive defaults.

Two limits that ``concurrency`` used to set together are separate here:

- :class:`HandlerSlots`: how many handlers run at once (``concurrency``). A slot is taken
  when a handler starts and given back when it returns, before the delivery's reply and
  ack: settling is the worker's round trip, not the handler's work, and it is batched
  (``AckBatcher``), so a fast handler's slot is not held for a network round trip.
- :class:`ReadSizer`: how many messages one read leases (``batch_size``). Without an
  explicit ``batch_size``/``concurrency`` it adapts: it doubles while reads come back
  full and the handlers are starved when one returns (a slot free, nothing waiting: the
  reads, not the handlers, are the bottleneck), and halves while leased messages are
  still waiting for a handler slot when a read returns (the handlers are the bottleneck:
  leasing more would only hold messages that the type's other instances could run). The
  worker then holds at most ``concurrency + batch`` deliveries: the handlers running plus
  one read's worth queued for a slot, each leased and extended by the lease keeper like a
  running one.

See ``docs/worker.md`` ("Adaptive reads").
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

__all__ = [
    "DEFAULT_CONCURRENCY",
    "MAX_ADAPTIVE_BATCH",
    "MIN_ADAPTIVE_BATCH",
    "HandlerSlots",
    "ReadSizer",
]

DEFAULT_CONCURRENCY = 8
"""Handlers a worker runs at once unless told: bounded, since handlers often call a
downstream API (an LLM) that many concurrent calls would overload."""

MAX_ADAPTIVE_BATCH = 256
"""The most an adaptive read leases: past it a round trip's cost is already amortised."""

MIN_ADAPTIVE_BATCH = 1
"""The least an adaptive read leases (slow handlers: hold one message in reserve)."""


class HandlerSlots:
    """At most ``limit`` handlers at once; counts the deliveries waiting for a slot.

    ``close()`` (the worker stops) makes every waiting and later :meth:`acquire` return
    False: a delivery that has not started is given back rather than started late.
    """

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False

    @property
    def waiting(self) -> int:
        """Deliveries leased and waiting for a slot."""
        return len(self._waiters)

    @property
    def free(self) -> int:
        """Slots no handler holds now."""
        return self._free

    @property
    def closed(self) -> bool:
        """Whether the worker stopped starting handlers."""
        return self._closed

    async def acquire(self) -> bool:
        """Take a slot (waiting in order for one); False once closed (take nothing)."""
        if self._closed:
            return False
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future in self._waiters:
                self._waiters.remove(future)
            elif not self._closed:
                self.release()  # it was handed the slot as it was cancelled: pass it on
            raise
        return not self._closed  # closed while it waited: start nothing

    def release(self) -> None:
        """Give a slot back: to the longest waiter, else to the free ones."""
        while self._waiters:
            future = self._waiters.pop(0)
            if not future.done():
                future.set_result(None)  # the slot passes to it directly
                return
        self._free += 1

    def close(self) -> None:
        """Start no more handlers: every waiter gets False now, later callers at once."""
        self._closed = True
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)


@dataclass
class ReadSizer:
    """The size of a worker's next read, fixed or adapted to the backlog (module docstring).

    Args:
        batch: the first read's size (and every read's, when not ``adaptive``).
        adaptive: whether reads grow and shrink.
        low: the least an adaptive read leases.
        high: the most an adaptive read leases.
    """

    batch: int
    adaptive: bool = False
    low: int = MIN_ADAPTIVE_BATCH
    high: int = MAX_ADAPTIVE_BATCH

    def observe(self, asked: int, got: int, waiting: int, free: int) -> None:
        """Adapt after a read that asked ``asked`` and leased ``got``.

        Args:
            asked: how many the read asked for.
            got: how many it leased.
            waiting: deliveries still waiting for a handler slot when it returned
                (before its own were started).
            free: handler slots free then.
        """
        if not self.adaptive:
            return
        if waiting > 0:
            # The handlers lag behind what was leased: lease less, hold less.
            self.batch = max(self.low, self.batch // 2)
        elif got >= asked > 0 and free > 0:
            # A full read while the handlers had run out of work: a backlog they keep up
            # with, so one round trip can carry more.
            self.batch = min(self.high, self.batch * 2)
