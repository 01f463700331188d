"""``MaintenanceLoop``: a worker's periodic recovery of its queue and registration checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tta_agent_coordination.interfaces import MessageCoordinator, Ownership
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.runtime.presence import AgentPresence
from tta_agent_coordination.runtime.supervision import OUTAGE_ERRORS, Progress

__all__ = ["MaintenanceLoop"]


class MaintenanceLoop:
    """Recovers the agent's queue every ``every`` seconds; checks the registration.

    A registered worker checks its registration every ``poll`` seconds too (a local
    look-up, no Redis call): its fetch loop may be parked in a long blocking read, which
    the stop that a lost registration causes ends at once.

    Args:
        coordinator: the queues.
        agent_id: the agent whose own queue is recovered (the type queue is healed by
            every receive of every instance, and by ``recover_pending(None)``).
        presence: the worker's registration.
        every: seconds between recoveries.
        poll: seconds between checks of a registration.
        on_lost: called once the registration is found lost; the worker stops.
        log: the worker's logger.
    """

    def __init__(
        self,
        coordinator: MessageCoordinator,
        agent_id: AgentId,
        presence: AgentPresence,
        *,
        every: float,
        poll: float,
        on_lost: Callable[[], None],
        log: Any,
    ) -> None:
        self._coordinator = coordinator
        self._agent_id = agent_id
        self._presence = presence
        self._every = every
        self._poll = poll
        self._on_lost = on_lost
        self._log = log

    async def run(self, progress: Progress) -> None:
        """Recover and check until cancelled, or until the registration is lost."""
        loop = asyncio.get_running_loop()
        next_recovery = loop.time() + self._every
        while True:
            step = next_recovery - loop.time()
            if self._presence.registered:
                step = min(step, self._poll)
            await asyncio.sleep(max(0.0, step))
            if loop.time() >= next_recovery:
                next_recovery = loop.time() + self._every
                try:
                    await self._coordinator.recover_pending(self._agent_id)
                except OUTAGE_ERRORS as exc:
                    self._log.warning("recover_failed", error=str(exc))
                progress()
            if self._presence.ownership() is Ownership.LOST:
                # This process is no longer the agent and must stop taking its work.
                self._on_lost()
                return
