"""Sweeping the dedupe sets of queues that left the queue index.

Recovery deletes a queue it finds empty and drops it from the queue index, but keeps its
dedupe set while ids are still inside their dedupe window (a resend must stay a
duplicate). Only a send to that queue pruned the set again, so the set of a short-lived
agent stayed for good (issue 23: 50 agents left 1,000 entries). Recovery of every queue
(``recover_pending()`` with no agent, ``tta-coord recover``) now sweeps them: each dedupe
set of a queue outside the index loses its expired ids and is deleted once empty, in one
script call per set (``scripts/dedupe_sweep.lua``). Ids still inside their window stay,
so a set goes at the first sweep after its window (``dedupe_window_s``) has passed.

Since then a dedupe set expires by itself: the scripts set its expiry to the end of its
latest window whenever they settle an id and none is left unsettled (and ``PERSIST`` it
when they mark one unsettled; ``refresh_dedupe_expiry`` in ``queue_common.lua``). The
sweep is still needed for sets written by earlier versions, which have no expiry and
would otherwise stay until their queue is sent to again; on a deployment that only ever
ran this version it finds nothing to do.

Finding the sets takes a SCAN of the key space under the prefix (``MATCH`` on the dedupe
key pattern, ``TYPE zset``), of every primary on a Redis Cluster: one round trip per
:data:`SCAN_COUNT` keys looked at, on the same order of work as recovering every queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.core import CoordinatorCore
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.queue_index import QueueIndex
from tta_agent_coordination.redis.scripts import dedupe_sweep
from tta_agent_coordination.redis.scripts.dedupe_sweep import SweepOutcome
from tta_agent_coordination.redis.topology import scan_pages

__all__ = ["SCAN_COUNT", "DedupeSweep", "sweep_orphan_dedupe_sets"]

SCAN_COUNT = 1_000
"""Keys looked at per SCAN round trip (the COUNT hint)."""


class DedupeSweep(NamedTuple):
    """What one sweep did."""

    swept: int
    """Dedupe sets of queues outside the index that were looked at."""
    ids_removed: int
    """Ids past their dedupe window, removed."""
    sets_deleted: int
    """Sets left empty, deleted."""


async def sweep_orphan_dedupe_sets(core: CoordinatorCore, index: QueueIndex) -> DedupeSweep:
    """Expire the old ids of every dedupe set whose queue is not in the queue index.

    Raises:
        CoordinatorUnavailableError: Redis failed (or timed out).
        CircuitBreakerOpenError: the guard's breaker is open.
    """
    keys = core.keys
    indexed = set(await index.members())
    total = DedupeSweep(0, 0, 0)

    def run(fn: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
        return core.call("sweep_dedupe", fn, retry=True)

    # Every primary of a Cluster in turn (scan_pages): a dedupe set lives on the node of
    # its queue's slot.
    pages = scan_pages(
        core.redis, match=keys.dedupe_scan_pattern, count=SCAN_COUNT, type_="zset", run=run
    )
    async for found in pages:
        calls: list[ScriptCall[SweepOutcome]] = []
        for raw in found:
            key = text(raw)
            agent = keys.agent_from_key(key)
            if agent is None or agent in indexed:
                continue
            queue = keys.queue(agent)
            if queue.dedupe == key:
                calls.append(dedupe_sweep.call(queue))
        if calls:
            done = await _sweep(core, calls)
            total = DedupeSweep(*(x + y for x, y in zip(total, done, strict=True)))
    if total.ids_removed or total.sets_deleted:
        core.log.info(
            "dedupe_swept",
            sets=total.swept,
            ids_removed=total.ids_removed,
            sets_deleted=total.sets_deleted,
        )
    return total


async def _sweep(core: CoordinatorCore, calls: list[ScriptCall[SweepOutcome]]) -> DedupeSweep:
    # Each call is atomic on its own; repeating one (a retry after a timeout) only
    # removes ids that have expired by then, so the batch is safe to retry.
    outcomes: list[Any]
    outcomes, _ = await core.call(
        "sweep_dedupe", lambda: core.scripts.run_pipelined(calls), retry=True
    )
    return DedupeSweep(
        len(calls),
        sum(o.removed for o in outcomes),
        sum(1 for o in outcomes if o.deleted),
    )
