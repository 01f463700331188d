"""Telling a cancellation apart from a failure.

Some clients (redis-py among them) report a command interrupted by task cancellation as
a connection error. Counting that as a failure would open a breaker, or trigger retries,
because callers were cancelled, not because the dependency failed.
"""

from __future__ import annotations

import asyncio

__all__ = ["CancellationWatch", "being_cancelled"]


def being_cancelled() -> bool:
    """True when the current asyncio task has a cancellation pending."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return False
    return task is not None and task.cancelling() > 0


class CancellationWatch:
    """Notes the current task's pending cancellations, to tell later if one arrived.

    Used around a client call that may turn a cancellation into an error, or swallow it:
    :meth:`reraise` raises ``CancelledError`` if the task was cancelled since the watch
    began, while cleanup code that runs during an earlier cancellation still works.
    """

    __slots__ = ("_count", "_task")

    def __init__(self) -> None:
        try:
            self._task = asyncio.current_task()
        except RuntimeError:
            self._task = None
        self._count = self._task.cancelling() if self._task is not None else 0

    def reraise(self, cause: BaseException | None = None) -> None:
        """Raise ``CancelledError`` (from ``cause``) if a cancellation arrived meanwhile."""
        if self._task is not None and self._task.cancelling() > self._count:
            raise asyncio.CancelledError from cause
