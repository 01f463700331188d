"""The driver: the ``AgentWorker`` handlers that advance runs, and the apply loop.

Messages drive a run, not a call stack. Everything a run waits for arrives in the
driver's type queue (``AgentId("plan_runtime.<instance>")``, shared by every driver
process): a *kick* after ``start``, a step's *reply* (the step request's ``reply_to``),
a step *timeout* (a delayed message the driver sent itself with the request), and the
run *deadline* (a delayed message sent at ``start``). Each is handled the same way:

1. compute the transition with the pure ``advance`` from the stored state, and write it
   by compare-and-set (``RunStore.apply``; on a conflict, reload and decide again);
2. *reconcile*: do what ``next_work`` says is left (narrate, plan, send the next step,
   reflect), recording each answer by compare-and-set before the next.

A driver killed anywhere leaves its message unacked; it is delivered again (to this or
another driver) and step 1 is then a no-op, step 2 does only what is left. A step's
request has a deterministic id (``run:<id>:<plan version>:<index>:<attempt>``) and is
sent only while the state says it was not (``sent``): at most the one send that was
interrupted before ``sent`` was recorded is repeated, and the queue's dedupe drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tta_agent_coordination.errors import ConfigurationError, CoordinatorUnavailableError
from tta_agent_coordination.models import AgentId, AgentMessage, MessageType, SendStatus
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.plans.errors import PlanError, RunNotFoundError
from tta_agent_coordination.plans.machine import (
    CLOSING,
    OPENING,
    DeadlineReached,
    Event,
    Narrated,
    Planned,
    PlanningFailed,
    Reflected,
    ReflectionFailed,
    RunState,
    StepFinished,
    StepSent,
    Work,
    advance,
    next_work,
)
from tta_agent_coordination.plans.metrics import PlanMetrics
from tta_agent_coordination.plans.models import (
    Plan,
    Reflection,
    RunStatus,
    StepError,
    StepResult,
)
from tta_agent_coordination.plans.protocols import Narrator, Planner, Reflector
from tta_agent_coordination.plans.results import from_reply, timeout_error
from tta_agent_coordination.plans.store import RunStore
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.runtime.context import MessageContext

__all__ = [
    "DEADLINE_KIND",
    "KICK_KIND",
    "PLAN_RUN_HEADER",
    "TIMEOUT_KIND",
    "RunDriver",
    "deadline_message_id",
    "kick_message_id",
    "parse_step_message_id",
    "step_message_id",
    "timeout_message_id",
]

KICK_KIND = "plan.kick"
"""Payload kind of the message that makes a driver look at a run."""
TIMEOUT_KIND = "plan.timeout"
"""Payload kind of a step attempt's timeout (a delayed message)."""
DEADLINE_KIND = "plan.deadline"
"""Payload kind of a run's deadline (a delayed message)."""
PLAN_RUN_HEADER = "tta-plan-run"
"""Header of a step request naming its run."""

_MAX_CAS_ROUNDS = 100
_MAX_WORK_ROUNDS = 10_000


def step_message_id(run_id: str, key: str) -> str:
    """The deterministic message id of a step attempt's request (also its correlation id)."""
    return f"run:{run_id}:{key}"


def parse_step_message_id(correlation_id: str) -> tuple[str, str] | None:
    """(run id, step key) from a step request's id; None for any other id."""
    parts = correlation_id.split(":")
    if len(parts) != 5 or parts[0] != "run" or not all(p.isdigit() for p in parts[2:]):
        return None
    return parts[1], ":".join(parts[2:])


class RunDriver:
    """Advances runs: the apply loop, reconciliation and the worker's handlers.

    Built by :class:`~tta_agent_coordination.plans.PlanRuntime`; every process of a
    deployment (drivers, callers of ``start``/``cancel``) uses one.
    """

    def __init__(
        self,
        coordinator: RedisMessageCoordinator,
        store: RunStore,
        address: AgentId,
        *,
        planner: Planner | None,
        reflector: Reflector | None,
        narrator: Narrator | None,
        metrics: PlanMetrics,
        planner_timeout_s: float,
        reflector_timeout_s: float,
    ) -> None:
        self._coordinator = coordinator
        self._store = store
        self.address = address
        """The driver queue (type-wide): replies, timeouts, kicks and deadlines go here."""
        self._planner = planner
        self._reflector = reflector
        self._narrator = narrator
        self._metrics = metrics
        self._planner_timeout = planner_timeout_s
        self._reflector_timeout = reflector_timeout_s
        self._log = get_logger(__name__, driver=str(address))

    # --- applying events ----------------------------------------------------------------

    async def apply(
        self, run_id: str, decide: Callable[[RunState], Event | None]
    ) -> tuple[RunState, bool]:
        """Apply the event ``decide`` makes from the current state, by compare-and-set.

        ``decide`` is called again with the new state after a conflict (another driver
        wrote first), so it must read everything it needs from the state it gets.
        Returns the state after, and whether the event changed it.

        Raises:
            RunNotFoundError: no such run.
            CoordinatorUnavailableError: Redis failed, or the state kept changing under
                this driver (more than 100 conflicts in a row).
        """
        for _ in range(_MAX_CAS_ROUNDS):
            state = await self._store.require(run_id)
            event = decide(state)
            if event is None:
                return state, False
            transition = advance(state, event)
            if not transition.applied:
                return state, False
            if await self._store.apply(state, transition.state, transition.events):
                after = transition.state.model_copy(update={"version": state.version + 1})
                await self._after(
                    before=state,
                    after=after,
                    transition_events=transition.events,
                    cancel=transition.cancel_timeouts,
                )
                return after, True
        raise CoordinatorUnavailableError(
            f"run {run_id!r} changed {_MAX_CAS_ROUNDS} times in a row while applying an event"
        )

    async def _after(
        self,
        *,
        before: RunState,
        after: RunState,
        transition_events: tuple[tuple[str, dict[str, Any]], ...],
        cancel: tuple[str, ...],
    ) -> None:
        """Side effects of a written transition: metrics, and cancelling dead timers."""
        mode = after.mode.value
        for kind, _data in transition_events:
            if kind == "step_started":
                self._metrics.step_started(mode)
        if after.status.terminal and not before.status.terminal:
            duration = max(0.0, time.time() - after.created_ms / 1000) if after.created_ms else 0.0
            self._metrics.run_finished(mode, after.status.value, duration)
            self._log.info(
                "run_finished", run=after.run_id, status=after.status.value, reason=after.reason
            )
            cancel = (*cancel, "deadline")
        for key in cancel:
            # Best effort: a timer that still fires finds nothing to match and is ignored.
            message_id = (
                deadline_message_id(after.run_id)
                if key == "deadline"
                else timeout_message_id(after.run_id, key)
            )
            try:
                await self._coordinator.cancel_scheduled(self.address, message_id)
            except CoordinatorUnavailableError as exc:
                self._log.warning("timer_cancel_failed", run=after.run_id, key=key, error=str(exc))

    # --- reconciling ----------------------------------------------------------------------

    async def reconcile(self, run_id: str) -> RunState:
        """Do what is left for ``run_id`` until it waits for an event or has ended.

        With a recorder, the state is recorded (write-through) before a step is sent and
        once the run has ended.

        Raises:
            RunNotFoundError: no such run.
            CoordinatorUnavailableError: Redis failed.
            StoreError: the recorder failed (the message is retried).
        """
        state = await self._store.require(run_id)
        for _ in range(_MAX_WORK_ROUNDS):
            work = next_work(state)
            if work is None:
                if state.status.terminal:
                    # The result reaches the recorder before this message is acked.
                    await self._store.ensure_recorded(state)
                return state
            if work.kind == "send":
                # Every earlier result reaches the recorder before the next step starts:
                # a run restored from it never re-runs a finished step.
                await self._store.ensure_recorded(state)
                await self._send(state, work)
                state, _ = await self.apply(run_id, lambda _s, key=work.key: StepSent(key))
                continue
            event = await self._answer(state, work)
            state, applied = await self.apply(run_id, lambda _s, e=event: e)
            if not applied:
                state = await self._store.require(run_id)
        return state

    async def _answer(self, state: RunState, work: Work) -> Event:
        if work.kind == "plan":
            return await self._plan(state, work.plan_version)
        if work.kind == "reflect":
            assert work.record is not None
            return await self._reflect(state, work)
        return Narrated(work.anchor, await self._narrate(state, work))

    async def _plan(self, state: RunState, plan_version: int) -> Event:
        if self._planner is None:
            # A RunAdmin (no planner) never reconciles; refusing keeps it from ever
            # recording a planner failure that did not happen.
            raise PlanError(f"run {state.run_id!r} needs a planner: drive it with a PlanRuntime")
        try:
            plan = await asyncio.wait_for(
                self._planner.plan(state.task, state.context()), self._planner_timeout
            )
            if not isinstance(plan, Plan):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise TypeError(f"the planner returned {type(plan).__name__}, not a Plan")
        except Exception as exc:  # any planner failure falls back, as configured
            self._log.warning("planner_failed", run=state.run_id, error=repr(exc))
            return PlanningFailed(_describe(exc, self._planner_timeout), plan_version)
        return Planned(plan, plan_version)

    async def _reflect(self, state: RunState, work: Work) -> Event:
        assert work.record is not None
        assert self._reflector is not None
        try:
            reflection = await asyncio.wait_for(
                self._reflector.reflect(work.record, state.context()), self._reflector_timeout
            )
            if not isinstance(reflection, Reflection):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise TypeError(
                    f"the reflector returned {type(reflection).__name__}, not a Reflection"
                )
        except Exception as exc:  # any reflector failure falls back to the default rule
            self._log.warning("reflector_failed", run=state.run_id, error=repr(exc))
            return ReflectionFailed(work.key, _describe(exc, self._reflector_timeout))
        return Reflected(work.key, reflection)

    async def _narrate(self, state: RunState, work: Work) -> str | None:
        narrator = self._narrator
        if narrator is None:
            return None
        try:
            if work.anchor == OPENING:
                text = narrator.opening(state.task)
            elif work.anchor == CLOSING:
                text = narrator.closing(state.to_result())
            else:
                assert work.record is not None
                text = narrator.progress(work.record, state.context())
            return await asyncio.wait_for(text, self._reflector_timeout)
        except Exception as exc:  # narration is never worth failing a run for
            self._log.warning("narrator_failed", run=state.run_id, error=repr(exc))
            return None

    async def _send(self, state: RunState, work: Work) -> None:
        step = work.step
        assert step is not None
        message_id = step_message_id(state.run_id, work.key)
        request = AgentMessage(
            message_id=message_id,
            sender=self.address,
            recipient=step.agent,
            message_type=MessageType.REQUEST,
            payload=step.payload,
            correlation_id=message_id,
            reply_to=self.address,
            headers={PLAN_RUN_HEADER: state.run_id},
            # As request(expire=True): a request nobody received before its timeout is
            # dead-lettered rather than handled for a run that has moved on.
            expires_at=datetime.now(UTC) + timedelta(seconds=step.timeout_s),
        )
        # The timer first: a crash after it but before the request leaves a timer that
        # the redelivered message schedules again (same id, deduplicated).
        timer = AgentMessage(
            message_id=timeout_message_id(state.run_id, work.key),
            sender=self.address,
            recipient=self.address,
            message_type=MessageType.EVENT,
            payload={"kind": TIMEOUT_KIND, "run_id": state.run_id, "key": work.key},
        )
        scheduled = await self._coordinator.send_message(
            self.address, self.address, timer, delay_s=step.timeout_s
        )
        _require_sent(scheduled.delivered, scheduled.status, "step timeout", scheduled.error)
        sent = await self._coordinator.send_message(self.address, step.agent, request)
        if sent.delivered:
            return
        if sent.status is SendStatus.REFUSED:
            # The step's queue refused it (full): a retryable failure of this attempt.
            await self.apply(
                state.run_id,
                lambda _s: StepFinished(
                    work.key,
                    StepResult(
                        ok=False,
                        error=StepError(
                            kind="not_delivered",
                            type="RequestNotDeliveredError",
                            message=str(sent.error),
                        ),
                    ),
                ),
            )
            return
        _require_sent(False, sent.status, "step request", sent.error)

    async def rearm(self, state: RunState) -> bool:
        """Send a restored run's in-flight step again: its request and timeout, same ids.

        Used after a Redis loss (``PlanRuntime.restore``): the request and its timer were
        lost with Redis, and the state says the request was sent, so reconciling alone
        would wait forever. The ids are the original ones, so a copy that survived (or a
        message store's restore) is deduplicated. False when no step is in flight.

        Raises:
            CoordinatorUnavailableError: Redis failed.
        """
        step = state.current_step
        if state.status is not RunStatus.RUNNING or not state.sent or step is None:
            return False
        await self._send(state, Work("send", key=state.current_key, step=step))
        return True

    # --- the worker's handlers ------------------------------------------------------------

    async def on_kick(self, ctx: MessageContext[Any]) -> None:
        """A run was started (or must be looked at again): reconcile it."""
        run_id = str(ctx.message.payload.get("run_id", ""))
        async with self._run_exists(run_id, ctx):
            await self.reconcile(run_id)

    async def on_timeout(self, ctx: MessageContext[Any]) -> None:
        """A step attempt's timer fired: record a timeout if the attempt is still in flight."""
        payload = ctx.message.payload
        run_id, key = str(payload.get("run_id", "")), str(payload.get("key", ""))

        def decide(state: RunState) -> Event | None:
            step = state.current_step
            if state.status is not RunStatus.RUNNING or state.current_key != key or step is None:
                return None
            return StepFinished(key, timeout_error(step.timeout_s))

        async with self._run_exists(run_id, ctx):
            await self.apply(run_id, decide)
            await self.reconcile(run_id)

    async def on_deadline(self, ctx: MessageContext[Any]) -> None:
        """The run's timeout passed."""
        run_id = str(ctx.message.payload.get("run_id", ""))
        async with self._run_exists(run_id, ctx):
            await self.apply(run_id, lambda _s: DeadlineReached())
            await self.reconcile(run_id)

    async def on_response(self, ctx: MessageContext[Any]) -> None:
        """A step's reply: record it (once; late and duplicate ones change nothing)."""
        reply = ctx.message
        parsed = parse_step_message_id(reply.correlation_id or "")
        if parsed is None:
            self._log.warning("unexpected_response", correlation_id=reply.correlation_id)
            return
        run_id, key = parsed
        result = from_reply(reply)
        async with self._run_exists(run_id, ctx):
            await self.apply(run_id, lambda _s: StepFinished(key, result))
            await self.reconcile(run_id)

    @contextlib.asynccontextmanager
    async def _run_exists(self, run_id: str, ctx: MessageContext[Any]) -> AsyncGenerator[None]:
        """Settle a message of a run that no longer exists (expired) instead of retrying it.

        A reply or timer can outlive its run (``retention_s``), and a malformed run id
        can never exist: either is logged and acked, never retried into the DLQ.
        """
        try:
            yield
        except (RunNotFoundError, ConfigurationError) as exc:
            self._log.warning(
                "message_for_unknown_run",
                run=run_id,
                message=ctx.message.message_id,
                error=str(exc),
            )


def timeout_message_id(run_id: str, key: str) -> str:
    """The id of a step attempt's timer message."""
    return f"run:{run_id}:{key}:timeout"


def deadline_message_id(run_id: str) -> str:
    """The id of a run's deadline message."""
    return f"run:{run_id}:deadline"


def kick_message_id(run_id: str) -> str:
    """The id of a run's first kick."""
    return f"run:{run_id}:kick"


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return f"{type(exc).__name__}: {exc}"


def _require_sent(delivered: bool, status: SendStatus, what: str, error: str | None) -> None:
    if not delivered:
        # Raising fails the handled message transiently: it is retried with backoff, and
        # the retry sends the same ids again (deduplicated if this one did land).
        raise CoordinatorUnavailableError(f"{what} not sent ({status.value}): {error}")
