"""``LeaseKeeper``: keeps the leases of a worker's running handlers from running out."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from tta_agent_coordination.interfaces import MessageCoordinator
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.runtime.deliveries import Delivery
from tta_agent_coordination.runtime.stats import WorkerStats
from tta_agent_coordination.runtime.supervision import OUTAGE_ERRORS, Progress

__all__ = ["LeaseKeeper"]


class LeaseKeeper:
    """Extends the lease of every running delivery once half of it is left.

    A lease found gone (the process stalled past it and the message was recovered) is
    not extended again: the handler's ``ctx.lease_lost`` turns True.

    Args:
        coordinator: the queues the deliveries came from.
        agent_id: the agent the worker runs as: the queue of a delivery that does not
            name its own (``ReceivedMessage.queue``).
        deliveries: the worker's running deliveries by token (read live).
        visibility_timeout: seconds each extension pushes the lease to.
        stats: the worker's counters, updated in place.
        log: the worker's logger.
    """

    def __init__(
        self,
        coordinator: MessageCoordinator,
        agent_id: AgentId,
        deliveries: Mapping[str, Delivery],
        visibility_timeout: float,
        stats: WorkerStats,
        log: Any,
    ) -> None:
        self._coordinator = coordinator
        self._agent_id = agent_id
        self._deliveries = deliveries
        self._visibility = visibility_timeout
        self._stats = stats
        self._log = log

    async def run(self, progress: Progress) -> None:
        """Check the leases four times per visibility timeout, until cancelled.

        Outages are logged and tried again at the next check; any other error of an
        extension ends the call once every extension of that check is done (the
        worker's supervisor restarts it, or gives up).
        """
        loop = asyncio.get_running_loop()
        tick = max(0.01, self._visibility / 4)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            due = [
                d for d in self._deliveries.values() if d.lease_until - now <= self._visibility / 2
            ]
            if due:
                errors = await asyncio.gather(*(self._extend(delivery) for delivery in due))
                for error in errors:
                    if error is not None:
                        raise error
            progress()

    async def _extend(self, delivery: Delivery) -> Exception | None:
        """Extend one lease; the error when it failed on something other than an outage."""
        token = delivery.received.token
        try:
            queue = delivery.received.queue or self._agent_id
            extended = await self._coordinator.extend_lease(queue, token, self._visibility)
        except OUTAGE_ERRORS as exc:
            self._log.warning("extend_lease_failed", token=token, error=str(exc))
            return None
        except Exception as exc:
            return exc
        if extended:
            delivery.lease_until = asyncio.get_running_loop().time() + self._visibility
            self._stats.lease_extensions += 1
        elif token in self._deliveries:
            delivery.lease_until = float("inf")  # nothing more to extend
            if delivery.context is not None:
                delivery.context._mark_lease_lost()  # pyright: ignore[reportPrivateUsage]
            self._log.warning("lease_lost", token=token)
        return None
