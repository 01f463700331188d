"""``TTAPipeline``: TTA's turn (IPA -> WBA -> NGA) as requests to type-wide agent queues.

It replaces the original ``EnhancedRedisMessageCoordinator`` and its
``ScalableWorkflowCoordinator``, without their bugs:

* each step is **one** request through the coordinator, handled by whichever worker of
  the agent type takes it; nothing is also run in-process "for audit" (the original did
  the work twice). The audit trail is the coordinator's message store: give the
  coordinator a store (``PostgresMessageStore``) and every request and reply of a
  workflow is recorded once, tagged with the workflow's headers;
* no batch processor (the original's deadlocked holding its lock while awaiting);
* :meth:`TTAPipeline.cancel` cancels the running workflow's task, so the request it
  waits for is abandoned and no later step runs (the original only set a flag); a
  workflow timeout does the same.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tta_agent_coordination.errors import CoordinationError
from tta_agent_coordination.interfaces import MessageCoordinator
from tta_agent_coordination.models import AgentId, AgentMessage, MessageType
from tta_agent_coordination.observability.logging import get_logger
from tta_agents.pipeline.steps import (
    DEFAULT_STEPS,
    DEFAULT_TIMEOUTS,
    PIPELINE_EVENT,
    PipelineResult,
    Step,
    StepKind,
    StepResult,
    WorkflowStatus,
)

__all__ = [
    "DEFAULT_SENDER",
    "SESSION_HEADER",
    "STEP_HEADER",
    "WORKFLOW_HEADER",
    "PipelineError",
    "TTAPipeline",
]

log = get_logger(__name__)

DEFAULT_SENDER = AgentId("tta_pipeline", "default")
"""The sender of the pipeline's requests and progress events."""
WORKFLOW_HEADER = "tta-workflow-id"
"""Header of every request and event of a workflow: its id."""
SESSION_HEADER = "tta-session-id"
"""Header of every request and event of a workflow: the player's session."""
STEP_HEADER = "tta-step"
"""Header of a step's request: ``"{index}:{kind}"`` (``"1:wba"``; ``"2.0:ipa"`` inside a
parallel step)."""


class PipelineError(CoordinationError, ValueError):
    """A pipeline was misconfigured or misused (bad settings, a workflow id in use)."""


@dataclass
class _Run:
    workflow_id: str
    session_id: str
    task: asyncio.Task[PipelineResult] | None = None
    cancel_requested: bool = False
    in_flight: dict[str, tuple[int, StepKind, float]] = field(
        default_factory=dict[str, tuple[int, StepKind, float]]
    )

    def headers(self, step: str | None = None) -> dict[str, str]:
        out = {WORKFLOW_HEADER: self.workflow_id, SESSION_HEADER: self.session_id}
        if step is not None:
            out[STEP_HEADER] = step
        return out


class TTAPipeline:
    """Runs TTA workflows over the agents' type-wide queues (see the module docstring).

    Args:
        coordinator: the queues (``RedisMessageCoordinator``); it needs ``request`` and
            ``publish_event``.
        sender: the pipeline's own agent id (sender of requests and events).
        timeouts: request timeouts in seconds for IPA, WBA and NGA steps.
        workflow_timeout_s: a workflow still running after this is stopped (``timed_out``).
        max_concurrent: workflows run at once; more wait for a slot (their timeout runs
            from when they start).
        progress_events: publish progress (``publish_event``, message type ``event``) to
            the agents subscribed to events.

    Raises:
        PipelineError: a setting is out of range.
    """

    def __init__(
        self,
        coordinator: MessageCoordinator,
        *,
        sender: AgentId = DEFAULT_SENDER,
        timeouts: Sequence[float] = DEFAULT_TIMEOUTS,
        workflow_timeout_s: float = 300.0,
        max_concurrent: int = 100,
        progress_events: bool = True,
    ) -> None:
        if len(timeouts) != 3 or any(t <= 0 for t in timeouts):
            raise PipelineError(f"timeouts must be 3 positive seconds (IPA, WBA, NGA): {timeouts}")
        if workflow_timeout_s <= 0:
            raise PipelineError(f"workflow_timeout_s must be positive, got {workflow_timeout_s}")
        if max_concurrent < 1:
            raise PipelineError(f"max_concurrent must be at least 1, got {max_concurrent}")
        self._coordinator = coordinator
        self._sender = sender
        agents: tuple[StepKind, ...] = (StepKind.IPA, StepKind.WBA, StepKind.NGA)
        self._timeouts: dict[StepKind, float] = dict(zip(agents, timeouts, strict=True))
        self._workflow_timeout = float(workflow_timeout_s)
        self._slots = asyncio.Semaphore(max_concurrent)
        self._progress_events = progress_events
        self._running: dict[str, _Run] = {}

    @property
    def running(self) -> list[str]:
        """The ids of the workflows running (or waiting for a slot) now."""
        return sorted(self._running)

    async def run(
        self,
        session_id: str,
        player_input: str,
        *,
        steps: Sequence[Step] = DEFAULT_STEPS,
        context: Mapping[str, Any] | None = None,
        workflow_id: str | None = None,
    ) -> PipelineResult:
        """Run one workflow: each step's request in turn, a parallel step's at once.

        The context starts as ``context`` plus ``player_input`` and ``session_id``; the
        steps read the original keys from it (``player_input`` for IPA, ``session_id``
        as the world id and ``world_updates`` for WBA, ``narrative_prompt`` for NGA,
        unless a step's ``config`` gives them) and add their results to it
        (``ipa_result``, ``wba_result``, ``nga_result``).

        Returns:
            The outcome; a failed, timed out or cancelled workflow is a result too
            (``status``, ``error``), with the steps that ran.

        Raises:
            PipelineError: no steps, an empty ``session_id``, or ``workflow_id`` is
                running already.
        """
        if not steps:
            raise PipelineError("a workflow needs at least one step")
        if not session_id:
            raise PipelineError("session_id must not be empty")
        wid = workflow_id or uuid.uuid4().hex
        if wid in self._running:
            raise PipelineError(f"workflow {wid!r} is running already")
        run = _Run(wid, session_id)
        start = {**(context or {}), "player_input": player_input, "session_id": session_id}
        run.task = asyncio.create_task(self._execute(run, list(steps), start))
        self._running[wid] = run
        try:
            return await run.task
        finally:
            self._running.pop(wid, None)

    async def cancel(self, workflow_id: str) -> bool:
        """Stop a running workflow now; True when it was running.

        Its task is cancelled: the request it is waiting for is abandoned (a reply that
        comes later is dropped) and no later step runs. Returns once it has stopped;
        its :meth:`run` returns a ``cancelled`` result.
        """
        run = self._running.get(workflow_id)
        if run is None or run.task is None or run.task.done():
            return False
        run.cancel_requested = True
        run.task.cancel()
        await asyncio.wait({run.task})
        return True

    # --- one workflow ------------------------------------------------------------------

    async def _execute(
        self, run: _Run, steps: list[Step], context: dict[str, Any]
    ) -> PipelineResult:
        results: list[StepResult] = []
        status = WorkflowStatus.COMPLETED
        error: str | None = None
        try:
            async with self._slots:
                await self._progress(run, "workflow_started", steps=len(steps))
                async with asyncio.timeout(self._workflow_timeout):
                    for index, step in enumerate(steps):
                        result = await self._step(run, index, step, context)
                        results.append(result)
                        if not result.ok and not step.continue_on_error:
                            status = WorkflowStatus.FAILED
                            error = f"step {index} ({step.kind.value}) failed: {result.error}"
                            break
        except TimeoutError:
            status = WorkflowStatus.TIMED_OUT
            error = f"workflow timed out after {self._workflow_timeout}s"
            results += self._abandoned(run, error)
        except asyncio.CancelledError:
            if not run.cancel_requested:
                raise  # the caller of run() was cancelled: propagate
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            status = WorkflowStatus.CANCELLED
            error = "cancelled"
            results += self._abandoned(run, error)
        await self._progress(run, f"workflow_{status.value}", status=status.value, error=error)
        log.info(
            "tta workflow ended",
            workflow_id=run.workflow_id,
            session_id=run.session_id,
            status=status.value,
            error=error,
        )
        return PipelineResult(
            workflow_id=run.workflow_id,
            session_id=run.session_id,
            status=status,
            context=context,
            steps=results,
            error=error,
        )

    def _abandoned(self, run: _Run, reason: str) -> list[StepResult]:
        """Results of the steps in flight when the workflow stopped (top level only)."""
        loop = asyncio.get_running_loop()
        out: list[StepResult] = []
        for label, (index, kind, started) in sorted(run.in_flight.items()):
            if "." not in label:
                out.append(
                    StepResult(
                        index=index,
                        kind=kind,
                        ok=False,
                        error=reason,
                        duration_s=loop.time() - started,
                    )
                )
        run.in_flight.clear()
        return out

    async def _step(self, run: _Run, index: int, step: Step, context: dict[str, Any]) -> StepResult:
        if step.kind is not StepKind.PARALLEL:
            result = await self._request(run, str(index), index, step, context)
            if result.ok and step.update_context:
                context[f"{step.kind.value}_result"] = result.output
                context["step_type"] = step.kind.value
            return result
        loop = asyncio.get_running_loop()
        started = loop.time()
        run.in_flight[str(index)] = (index, step.kind, started)
        snapshot = dict(context)
        subs = await asyncio.gather(
            *(
                self._request(run, f"{index}.{i}", i, sub, snapshot)
                for i, sub in enumerate(step.steps)
            )
        )
        run.in_flight.pop(str(index), None)
        ok = all(s.ok for s in subs)
        if step.update_context:
            for sub, outcome in zip(step.steps, subs, strict=True):
                if outcome.ok and sub.update_context:
                    context[f"{sub.kind.value}_result"] = outcome.output
            context["parallel_results"] = [s.output if s.ok else None for s in subs]
            context["step_type"] = StepKind.PARALLEL.value
        failed = [f"{s.kind.value}: {s.error}" for s in subs if not s.ok]
        return StepResult(
            index=index,
            kind=StepKind.PARALLEL,
            ok=ok,
            error="; ".join(failed) or None,
            duration_s=loop.time() - started,
            parallel=list(subs),
        )

    async def _request(
        self, run: _Run, label: str, index: int, step: Step, context: Mapping[str, Any]
    ) -> StepResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        run.in_flight[label] = (index, step.kind, started)
        timeout = step.timeout_s if step.timeout_s is not None else self._timeouts[step.kind]
        tag = f"{label}:{step.kind.value}"
        await self._progress(run, "step_started", step=tag)
        try:
            reply = await self._coordinator.request(
                self._sender,
                AgentId(step.kind.agent_type),
                _payload(step, context),
                timeout=timeout,
                headers=run.headers(tag),
            )
        except CoordinationError as exc:
            result = StepResult(
                index=index,
                kind=step.kind,
                ok=False,
                error=f"{type(exc).__name__}: {exc}",
                duration_s=loop.time() - started,
            )
        else:
            result = StepResult(
                index=index,
                kind=step.kind,
                ok=True,
                output=reply.payload,
                duration_s=loop.time() - started,
            )
        run.in_flight.pop(label, None)
        await self._progress(
            run,
            "step_completed" if result.ok else "step_failed",
            step=tag,
            error=result.error,
        )
        return result

    async def _progress(self, run: _Run, kind: str, **fields: Any) -> None:
        """Publish one progress event; a failure to publish never fails the workflow."""
        if not self._progress_events:
            return
        payload = {
            "event": PIPELINE_EVENT,
            "kind": kind,
            "workflow_id": run.workflow_id,
            "session_id": run.session_id,
            **{k: v for k, v in fields.items() if v is not None},
        }
        event = AgentMessage(
            sender=self._sender,
            recipient=self._sender,
            message_type=MessageType.EVENT,
            payload=payload,
            headers=run.headers(),
        )
        try:
            await self._coordinator.publish_event(self._sender, event)
        except CoordinationError as exc:
            log.warning(
                "tta workflow progress event not published",
                workflow_id=run.workflow_id,
                kind=kind,
                error=str(exc),
            )


def _payload(step: Step, context: Mapping[str, Any]) -> dict[str, Any]:
    """The request payload of an agent step, per the original agents' contracts."""
    config = step.config
    if step.kind is StepKind.IPA:
        return {"text": config.get("text") or context.get("player_input", "")}
    if step.kind is StepKind.WBA:
        return {
            "world_id": config.get("world_id") or context.get("session_id") or "default",
            # WBARequest.updates is a dict: no updates is {}, never None.
            "updates": config.get("updates") or context.get("world_updates") or {},
        }
    narrative: dict[str, Any] = {**config.get("context", {}), **context}
    return {
        "prompt": config.get("prompt") or context.get("narrative_prompt", ""),
        "context": narrative,
    }
