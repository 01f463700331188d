"""``PlanRuntime``: the public API of the durable plan runtime.

::

    runtime = PlanRuntime(coordinator, planner=MyPlanner(), reflector=MyReflector(),
                          flags=RuntimeFlags(enhanced=True, reflection=True))
    worker = runtime.worker()          # the driver; run several for fail-over
    await worker.start()
    result = await runtime.execute(Task(agent=AgentId("writer"), payload={...}))

A run's state lives in Redis (``store.py``), is changed only through the pure state
machine (``machine.py``) by compare-and-set, and is advanced by driver workers
(``driver.py``) from messages: nothing of a run lives in a process's memory. See
``docs/plans.md``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from typing import Any

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import (
    ConfigurationError,
    RemoteHandlerError,
    RequestNotDeliveredError,
    RequestTimeoutError,
)
from tta_agent_coordination.interfaces import AgentRegistry
from tta_agent_coordination.models import AgentId, MessageType
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.plans.admin import RunAdmin
from tta_agent_coordination.plans.driver import (
    DEADLINE_KIND,
    KICK_KIND,
    TIMEOUT_KIND,
    deadline_message_id,
    kick_message_id,
)
from tta_agent_coordination.plans.errors import RunWaitTimeoutError
from tta_agent_coordination.plans.flags import RuntimeFlags
from tta_agent_coordination.plans.machine import Policy, new_run
from tta_agent_coordination.plans.metrics import PlanMetrics
from tta_agent_coordination.plans.models import (
    RunMode,
    RunResult,
    StepResult,
    Task,
    check_run_id,
)
from tta_agent_coordination.plans.protocols import Narrator, Planner, Reflector
from tta_agent_coordination.plans.record import RunRecorder
from tta_agent_coordination.plans.results import from_error, from_reply
from tta_agent_coordination.plans.worker import PlanDriverWorker
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

__all__ = ["PlanRuntime"]
_EXECUTE_MARGIN_S = 30.0
"""How much longer than ``run_timeout_s`` ``execute`` waits by default."""


class PlanRuntime(RunAdmin):
    """Plans a task into steps on agents and runs them durably (see the module docstring).

    Args:
        coordinator: the queues; the runtime's keys live under its prefix.
        registry: where driver workers register (None: they run unregistered).
        planner: assesses and plans tasks.
        reflector: judges step attempts (used when ``flags.reflection`` is on).
        narrator: tells the user what happens (used when ``flags.conversation`` is on).
        flags: feature flags and budgets (``RuntimeFlags()`` reads the environment).
        metrics: per-mode runs, steps, durations and outcomes.
        instance: the runtime's name; runtimes with different names under one prefix
            have separate driver queues (``plan_runtime.<instance>``).
        redis: the client for the runs' keys; the coordinator's own by default.
        store: where every run is also recorded (``RunRecorder``, e.g.
            ``tta_agent_coordination_postgres.PostgresPlanRunStore``), so that
            :meth:`restore` can bring the unfinished runs back after a Redis loss.

    Raises:
        ConfigurationError: ``instance`` is not a valid agent name.
    """

    def __init__(
        self,
        coordinator: RedisMessageCoordinator,
        registry: AgentRegistry | None = None,
        *,
        planner: Planner,
        reflector: Reflector | None = None,
        narrator: Narrator | None = None,
        store: RunRecorder | None = None,
        flags: RuntimeFlags | None = None,
        metrics: PlanMetrics | None = None,
        instance: str = "default",
        redis: RedisClient | None = None,
    ) -> None:
        super().__init__(
            coordinator,
            instance=instance,
            flags=flags,
            metrics=metrics,
            redis=redis,
            planner=planner,
            reflector=reflector,
            narrator=narrator,
            store=store,
        )
        self._registry = registry
        self._planner = planner
        self._reflector = reflector
        self._narrator = narrator
        self._log = get_logger(__name__, runtime=instance)

    # --- choosing a path ------------------------------------------------------------------

    async def choose_mode(self, task: Task) -> RunMode:
        """Legacy, single-shot or multi-step for ``task`` (flags, A/B split, assessment).

        A planner whose ``assess`` raises or hangs makes the task single-shot: the safe
        path that equals legacy.
        """
        flags = self.flags
        if not flags.enhanced_for(task.session_id):
            return RunMode.LEGACY
        if flags.planning_threshold == "never":
            return RunMode.SINGLE_SHOT
        if flags.planning_threshold == "always":
            return RunMode.MULTI_STEP
        try:
            verdict = await asyncio.wait_for(self._planner.assess(task), flags.planner_timeout_s)
        except Exception as exc:  # an assessment failure falls back to single-shot
            self._log.warning("assess_failed", error=repr(exc))
            return RunMode.SINGLE_SHOT
        return RunMode.MULTI_STEP if verdict == "multi_step" else RunMode.SINGLE_SHOT

    def _policy(self) -> Policy:
        flags = self.flags
        return Policy(
            max_steps=flags.max_steps,
            max_retries_per_step=flags.max_retries_per_step,
            max_replans=flags.max_replans,
            reflection=flags.reflection and self._reflector is not None,
            conversation=flags.conversation and self._narrator is not None,
            planner_fallback=flags.planner_fallback,
        )

    # --- the legacy path ------------------------------------------------------------------

    async def execute_legacy(self, task: Task) -> StepResult:
        """The single-shot path, unchanged: one request to ``task.agent``, its result.

        Not durable (the caller waits for the reply); a failure or a timeout is a
        result with ``ok=False``, as a run's step would record it.
        """
        try:
            reply = await self._coordinator.request(
                self.address, task.agent, task.payload, timeout=task.timeout_s
            )
        except (RemoteHandlerError, RequestTimeoutError, RequestNotDeliveredError) as exc:
            return from_error(exc)
        return from_reply(reply)

    # --- runs -------------------------------------------------------------------------------

    async def start(self, task: Task, *, run_id: str | None = None) -> str:
        """Create a run of ``task`` and hand it to the drivers; its id.

        Starting again with the same ``run_id`` changes nothing (and returns it).

        Raises:
            ConfigurationError: ``run_id`` is not a valid run id.
            CoordinatorUnavailableError: Redis failed.
        """
        run_id = run_id if run_id is not None else uuid.uuid4().hex
        try:
            check_run_id(run_id)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        mode = await self.choose_mode(task)
        first = new_run(run_id, task, mode, self._policy())
        now_ms = int(time.time() * 1000)
        state = first.state.model_copy(update={"created_ms": now_ms})
        created = await self.store.create(state, first.events, now_ms)
        if created:
            self._metrics.run_started(mode.value)
            for kind, _data in first.events:
                if kind == "step_started":
                    self._metrics.step_started(mode.value)
        await self._send_self(
            deadline_message_id(run_id), DEADLINE_KIND, run_id, delay_s=self.flags.run_timeout_s
        )
        await self._send_self(kick_message_id(run_id), KICK_KIND, run_id)
        return run_id

    async def execute(
        self,
        task: Task,
        *,
        run_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - how long the caller waits
    ) -> RunResult:
        """Start a run of ``task`` and wait until it has ended; its result.

        Raises:
            RunWaitTimeoutError: the run did not end within ``timeout`` seconds
                (``run_timeout_s`` + 30 by default); it goes on.
            StoreError: the runtime has a store and the result could not be recorded
                in it (the run has ended all the same: ``result(run_id)``).
        """
        run_id = await self.start(task, run_id=run_id)
        limit = timeout if timeout is not None else self.flags.run_timeout_s + _EXECUTE_MARGIN_S
        try:
            async with asyncio.timeout(limit):
                async for _event in self.events(run_id):
                    pass
        except TimeoutError:
            raise RunWaitTimeoutError(run_id, limit) from None
        state = await self.store.require(run_id)
        # With a recorder, the result is recorded before the caller learns it (the driver
        # records it too; this covers a driver that died between the two).
        await self.store.ensure_recorded(state)
        return state.to_result()

    # --- durability ---------------------------------------------------------------------------

    async def restore(self) -> int:
        """Put every unfinished run back into Redis from the store after a Redis loss.

        For each run the store holds unfinished (its newest snapshot; oldest run first),
        its state and version are written unless Redis holds the run already;
        then, while Redis holds exactly that version, the run is re-armed — its deadline
        (what is left of ``run_timeout_s``), its in-flight step's request and timeout
        (same deterministic ids, a full step timeout again) and a kick, so a driver picks
        it up and finishes it. A finished step is never re-run: the store received every
        result before the next step was sent. Restoring twice is harmless (the ids are
        deduplicated; a run Redis holds is never overwritten); finished runs are not
        restored. Restore the coordinator's messages (``MessageStore.restore``) first
        when the coordinator has a message store too.

        Returns the number of runs written back into Redis.

        Raises:
            ConfigurationError: the runtime has no store (``PlanRuntime(..., store=...)``).
            StoreError: the store could not be read.
            CoordinatorUnavailableError: Redis failed (restoring again is safe).
        """
        recording = self.store.recording
        if recording is None:
            raise ConfigurationError("restore() needs a run store: PlanRuntime(..., store=...)")
        restored = 0
        for state in await recording.recorder.unfinished_runs(recording.scope):
            if state.status.terminal:
                continue  # a store that returns one anyway: a finished run stays finished
            now_ms = int(time.time() * 1000)
            written, version = await self.store.restore(state, state.created_ms or now_ms)
            if version != state.version:
                # Redis holds another version: it was not lost, and its drivers go on.
                continue
            restored += int(written)
            left_s = (state.created_ms or now_ms) / 1000 + self.flags.run_timeout_s - now_ms / 1000
            await self._send_self(
                deadline_message_id(state.run_id),
                DEADLINE_KIND,
                state.run_id,
                delay_s=left_s if left_s > 0 else None,
            )
            await self.driver.rearm(state)
            await self._send_self(
                f"run:{state.run_id}:restored:{state.version}", KICK_KIND, state.run_id
            )
        self._log.info("runs_restored", restored=restored)
        return restored

    # --- the driver -------------------------------------------------------------------------

    def worker(self, name: str | None = None, **options: Any) -> PlanDriverWorker:
        """An ``AgentWorker`` that drives runs; start it, and run several for fail-over.

        Each worker is one instance (``name``, unique per process by default) of the
        driver type, competing on the driver queue. ``options`` go to ``AgentWorker``
        (``concurrency``, ``visibility_timeout``, ...) and ``recovery_interval`` (see
        :class:`~tta_agent_coordination.plans.worker.PlanDriverWorker`).

        Raises:
            ConfigurationError: ``name`` is not a valid agent instance name, or an
                option is out of range.
        """
        instance = name if name is not None else f"d{os.getpid()}-{secrets.token_hex(3)}"
        try:
            agent_id = AgentId(self.address.type, instance)
        except ValueError as exc:
            raise ConfigurationError(f"invalid driver name {instance!r}: {exc}") from None
        worker = PlanDriverWorker(
            self._coordinator, options.pop("registry", self._registry), agent_id, **options
        )
        worker.add_handler(self.driver.on_kick, MessageType.EVENT, kind=KICK_KIND)
        worker.add_handler(self.driver.on_timeout, MessageType.EVENT, kind=TIMEOUT_KIND)
        worker.add_handler(self.driver.on_deadline, MessageType.EVENT, kind=DEADLINE_KIND)
        worker.add_handler(self.driver.on_response, MessageType.RESPONSE)
        return worker
