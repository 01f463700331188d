"""``InterruptWatches``: end waits when an ``asyncio.Event`` is set, one task per event.

A blocking receive may be cut short by an ``interrupt`` event (a worker's stop). Waiting
on the event per wait (a task for ``event.wait()`` and an ``asyncio.wait`` on both) adds
two tasks and several loop passes to every wake-up of a worker, which waits again after
each message. Here one task per event waits on it for as long as waits use it (and
``linger_s`` after, for the next wait), and sets the futures of the waits registered with
it when the event is set.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

__all__ = ["InterruptWatches"]


@dataclass(slots=True)
class _Watch:
    task: asyncio.Task[None]
    futures: set[asyncio.Future[set[str]]] = field(default_factory=set[asyncio.Future[set[str]]])
    idle: asyncio.TimerHandle | None = None
    """Drops the watch once no wait has used it for ``linger_s``."""


class InterruptWatches:
    """The events that interrupt waits, each watched by one task.

    Args:
        linger_s: how long the task of an event no wait uses lives on (a worker waits
            again right after each message).
    """

    def __init__(self, linger_s: float) -> None:
        self._linger_s = linger_s
        self._watches: dict[asyncio.Event, _Watch] = {}

    def add(self, event: asyncio.Event, future: asyncio.Future[set[str]]) -> None:
        """Resolve ``future`` with an empty set once ``event`` is set (it is not yet)."""
        watch = self._watches.get(event)
        if watch is None or watch.task.done():
            task = asyncio.get_running_loop().create_task(
                self._watch(event), name="stream-waiter-interrupt"
            )
            watch = self._watches[event] = _Watch(task)
        if watch.idle is not None:
            watch.idle.cancel()
            watch.idle = None
        watch.futures.add(future)

    def remove(self, event: asyncio.Event, future: asyncio.Future[set[str]]) -> None:
        """Forget ``future`` (its wait ended); the event's task lingers."""
        watch = self._watches.get(event)
        if watch is not None:
            watch.futures.discard(future)
            if not watch.futures and watch.idle is None:
                watch.idle = asyncio.get_running_loop().call_later(
                    self._linger_s, self._drop_idle, event
                )

    def close(self) -> None:
        """Cancel every task (the waiter is closing)."""
        for watch in self._watches.values():
            watch.task.cancel()
            if watch.idle is not None:
                watch.idle.cancel()
        self._watches.clear()

    async def _watch(self, event: asyncio.Event) -> None:
        await event.wait()
        watch = self._watches.pop(event, None)
        if watch is not None:
            if watch.idle is not None:
                watch.idle.cancel()
            for future in watch.futures:
                if not future.done():
                    future.set_result(set())

    def _drop_idle(self, event: asyncio.Event) -> None:
        watch = self._watches.get(event)
        if watch is not None and not watch.futures:
            del self._watches[event]
            watch.task.cancel()
