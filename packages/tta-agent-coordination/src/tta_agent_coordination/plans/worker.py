"""``PlanDriverWorker``: the ``AgentWorker`` that drives runs, plus the driver queue's recovery.

Every driver competes on one type queue (``plan_runtime.<instance>``). A worker heals
a type queue only when it receives, and an idle one parks in a long read, so the lease
of a driver that was killed mid-message would come back only when that read ends (up
to 30 s). The driver worker therefore also recovers the driver queue itself every
``recovery_interval`` seconds: a requeued message wakes the parked read at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tta_agent_coordination.errors import CoordinationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.runtime.stats import WorkerState
from tta_agent_coordination.runtime.worker import AgentWorker

__all__ = ["PlanDriverWorker"]


class PlanDriverWorker(AgentWorker):
    """An ``AgentWorker`` that also recovers the shared driver queue periodically.

    Args:
        coordinator: the queues.
        registry: where it registers (None: unregistered).
        agent_id: this driver instance (``plan_runtime.<instance>:<name>``).
        recovery_interval: seconds between recoveries of the driver type queue
            (``min(visibility_timeout, 5)`` by default).
        **options: any other ``AgentWorker`` option.
    """

    def __init__(
        self,
        coordinator: RedisMessageCoordinator,
        registry: Any,
        agent_id: AgentId,
        *,
        recovery_interval: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(coordinator, registry, agent_id, **options)
        visibility = float(options.get("visibility_timeout", 30.0))
        self._recovery_every = (
            recovery_interval if recovery_interval is not None else min(visibility, 5.0)
        )
        self._redis_coordinator = coordinator
        self._recovery: asyncio.Task[None] | None = None
        self._driver_log = get_logger(__name__, agent=str(self.agent_id))

    async def start(self) -> None:
        """Start the worker, then the driver queue's recovery loop."""
        await super().start()
        self._recovery = asyncio.get_running_loop().create_task(
            self._recover_forever(), name=f"plan-driver-recovery-{self.agent_id}"
        )

    async def stop(self, grace_period: float | None = None) -> None:
        """Stop the recovery loop, then the worker (see ``AgentWorker.stop``)."""
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
            self._recovery = None
        await super().stop(grace_period)

    async def _recover_forever(self) -> None:
        queue = self.agent_id.type_queue
        while self.state is WorkerState.RUNNING:
            await asyncio.sleep(self._recovery_every)
            if self.state is not WorkerState.RUNNING:
                return
            try:
                await self._redis_coordinator.recover_pending(queue)
            except CoordinationError as exc:  # Redis down: the next round tries again
                self._driver_log.warning("driver_queue_recovery_failed", error=str(exc))
