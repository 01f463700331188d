"""``RunAdmin``: follow, inspect and cancel runs from any process (no planner needed).

:class:`~tta_agent_coordination.plans.PlanRuntime` is a ``RunAdmin`` that also starts and
drives runs; ``tta-coord runs`` and monitoring code use a plain ``RunAdmin``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import ConfigurationError, CoordinatorUnavailableError
from tta_agent_coordination.models import AgentId, AgentMessage, MessageType
from tta_agent_coordination.plans.driver import KICK_KIND, RunDriver
from tta_agent_coordination.plans.flags import RuntimeFlags
from tta_agent_coordination.plans.machine import Cancelled, next_work
from tta_agent_coordination.plans.metrics import NoOpPlanMetrics, PlanMetrics
from tta_agent_coordination.plans.models import RunEvent, RunResult, RunStatus
from tta_agent_coordination.plans.protocols import Narrator, Planner, Reflector
from tta_agent_coordination.plans.record import RunRecorder, RunRecording, run_scope
from tta_agent_coordination.plans.store import RunStore, RunSummary
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

__all__ = ["RunAdmin", "client_of"]

_FOLLOW_WAIT_S = 1.0
"""Longest single wait for new events; the state is re-checked in between."""


def client_of(coordinator: RedisMessageCoordinator) -> RedisClient:
    """The Redis client ``coordinator`` works on (``RedisMessageCoordinator.redis``).

    Raises:
        ConfigurationError: the coordinator has no Redis client (another back-end): pass
            ``redis=`` to ``PlanRuntime``.
    """
    client = getattr(coordinator, "redis", None)
    if client is None:
        raise ConfigurationError(
            "cannot find the coordinator's Redis client: pass redis= to PlanRuntime"
        )
    return cast("RedisClient", client)


class RunAdmin:
    """Reads, follows and cancels the runs of one runtime instance.

    Args:
        coordinator: the queues; the runs' keys live under its prefix.
        instance: the runtime's name (its driver queue is ``plan_runtime.<instance>``).
        flags: retention and event-stream limits (``RuntimeFlags()`` reads the
            environment).
        metrics: where run outcomes are reported (a cancel is one).
        redis: the client for the runs' keys; the coordinator's own by default.
        store: where runs are also recorded (e.g. Postgres), see ``plans/record.py``.

    Raises:
        ConfigurationError: ``instance`` is not a valid agent name.
    """

    def __init__(
        self,
        coordinator: RedisMessageCoordinator,
        *,
        instance: str = "default",
        flags: RuntimeFlags | None = None,
        metrics: PlanMetrics | None = None,
        redis: RedisClient | None = None,
        planner: Planner | None = None,
        reflector: Reflector | None = None,
        narrator: Narrator | None = None,
        store: RunRecorder | None = None,
    ) -> None:
        try:
            self.address = AgentId(f"plan_runtime.{instance}")
        except ValueError as exc:
            raise ConfigurationError(f"invalid runtime instance {instance!r}: {exc}") from None
        self.flags = flags if flags is not None else RuntimeFlags()
        self._coordinator = coordinator
        self._metrics: PlanMetrics = metrics if metrics is not None else NoOpPlanMetrics()
        self.store = RunStore(
            redis if redis is not None else client_of(coordinator),
            coordinator.keys.prefix,
            events_max_len=self.flags.events_max_len,
            retention_s=self.flags.retention_s,
            recording=(
                RunRecording(store, run_scope(coordinator.keys.prefix, instance))
                if store is not None
                else None
            ),
        )
        self.driver = RunDriver(
            coordinator,
            self.store,
            self.address,
            planner=planner,
            reflector=reflector,
            narrator=narrator,
            metrics=self._metrics,
            planner_timeout_s=self.flags.planner_timeout_s,
            reflector_timeout_s=self.flags.reflector_timeout_s,
        )

    async def _send_self(
        self, message_id: str, kind: str, run_id: str, *, delay_s: float | None = None
    ) -> None:
        message = AgentMessage(
            message_id=message_id,
            sender=self.address,
            recipient=self.address,
            message_type=MessageType.EVENT,
            payload={"kind": kind, "run_id": run_id},
        )
        outcome = await self._coordinator.send_message(
            self.address, self.address, message, delay_s=delay_s
        )
        if not outcome.delivered:
            raise CoordinatorUnavailableError(
                f"run {run_id!r}: {kind} not sent ({outcome.status.value}): {outcome.error}"
            )

    async def status(self, run_id: str) -> RunStatus:
        """The run's status.

        Raises:
            RunNotFoundError: no such run.
        """
        return (await self.store.require(run_id)).status

    async def result(self, run_id: str) -> RunResult:
        """The run as a :class:`RunResult` now (its steps so far, when it is still live).

        Raises:
            RunNotFoundError: no such run.
        """
        return (await self.store.require(run_id)).to_result()

    async def list_runs(self, limit: int = 50) -> list[RunSummary]:
        """The newest ``limit`` runs with their status."""
        return await self.store.list_runs(limit)

    async def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel a live run; False when it had ended already.

        A step already sent may still be handled by its agent; its reply is ignored,
        and no further step starts.

        Raises:
            RunNotFoundError: no such run.
        """
        _state, applied = await self.driver.apply(run_id, lambda _s: Cancelled(reason))
        if applied:
            # A driver tells the closing message, if the run narrates (this process may
            # have no narrator).
            await self._send_self(f"run:{run_id}:cancelled", KICK_KIND, run_id)
        return applied

    async def events(
        self, run_id: str, after: str = "0", *, follow: bool = True
    ) -> AsyncIterator[RunEvent]:
        """The run's events after entry id ``after``, as they come, until the run is over.

        With ``follow`` (the default) the iterator waits for new events (through the
        coordinator's ``stream_waiter``: no polling) and ends once the run has ended and
        nothing is left to tell; without, it ends after the events stored now. Any
        process can follow any run.

        Raises:
            RunNotFoundError: no such run.
        """
        log = self.store.keys.run(run_id).log
        last = after
        while True:
            batch = await self.store.read_events(run_id, last)
            for event in batch:
                last = event.id
                yield event
            if batch:
                continue
            state = await self.store.require(run_id)
            if not follow:
                return
            if state.status.terminal and next_work(state) is None:
                tail = await self.store.read_events(run_id, last)
                for event in tail:
                    yield event
                return
            waiter_id = "0-0" if last in ("0", "0-0") else last
            await self._coordinator.stream_waiter.wait({log: waiter_id}, _FOLLOW_WAIT_S)
