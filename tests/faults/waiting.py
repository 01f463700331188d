"""Bounded waits: every loop of the suite ends, with a result or a clear timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from tta_agent_coordination import AgentId, RedisMessageCoordinator
from tta_agent_coordination.models import QueueStats


async def wait_until(
    check: Callable[[], Awaitable[bool] | bool],
    limit_s: float,
    *,
    interval_s: float = 0.05,
) -> float | None:
    """Poll ``check`` until it is true; the seconds it took, or None after ``limit_s``."""
    started = time.monotonic()
    while True:
        outcome = check()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return time.monotonic() - started
        if time.monotonic() - started > limit_s:
            return None
        await asyncio.sleep(interval_s)


async def settled_queues(
    coordinator: RedisMessageCoordinator, agents: Sequence[AgentId], limit_s: float = 10.0
) -> list[QueueStats]:
    """Wait until no queue of ``agents`` holds an unsettled message; their last stats.

    Handlers are recorded when they start, so the last acks land a moment after the
    ledger shows every message handled.
    """
    stats: list[QueueStats] = []

    async def settled() -> bool:
        nonlocal stats
        stats = [await coordinator.queue_stats(agent) for agent in agents]
        return all(s.unsettled == 0 for s in stats)

    await wait_until(settled, limit_s)
    return stats
