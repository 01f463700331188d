"""Telling a cancellation apart from a failure.

Some clients (redis-py among them) report a command interrupted by task cancellation as
a connection error. Counting that as a failure would open a breaker, or trigger retries,
because callers were cancelled, not because the dependency failed.
"""

from __future__ import annotations

import asyncio

__all__ = ["being_cancelled"]


def being_cancelled() -> bool:
    """True when the current asyncio task has a cancellation pending."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return False
    return task is not None and task.cancelling() > 0
