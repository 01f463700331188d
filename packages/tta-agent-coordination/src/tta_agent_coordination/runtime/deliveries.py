"""Running one delivery: its handler, then its settlement (reply, ack or nack).

A handler that returns is a success: the requester gets the return value (requests
only), then the delivery is acked. A handler that raises is a failure: permanent for
``PermanentError``, an invalid payload or a missing handler, ``timeout`` for a handler
that ran past its ``timeout=``, transient otherwise; on the last allowed delivery the
requester gets the error, then the delivery is nacked. Settling never raises: any
error while settling (logged, with its traceback when it is not a back-end error) leaves
the lease to expire, and the message comes back.

With handler slots (:class:`.adaptive.HandlerSlots`) a delivery waits for a slot before
its handler starts and gives it back as soon as the handler returns or raises (settling
does not hold it); a delivery that the worker's stop finds still waiting is given back
unhandled (its lease cut to a millisecond), so the agent's next read takes it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tta_agent_coordination.errors import CoordinationError, PermanentError
from tta_agent_coordination.interfaces import CallGuard, MessageCoordinator
from tta_agent_coordination.models import AgentId, FailureType, ReceivedMessage
from tta_agent_coordination.observability.metrics import timing_of
from tta_agent_coordination.observability.tracing import ProcessScope, Tracing
from tta_agent_coordination.replies import expects_reply
from tta_agent_coordination.runtime.acks import AckBatcher
from tta_agent_coordination.runtime.adaptive import HandlerSlots
from tta_agent_coordination.runtime.context import MessageContext
from tta_agent_coordination.runtime.handlers import HandlerSpec, HandlerTable
from tta_agent_coordination.runtime.stats import WorkerStats

__all__ = [
    "Delivery",
    "DeliveryRunner",
    "HandlerTimeoutError",
    "failure_of",
    "wait_in_flight",
]


@dataclass(eq=False)
class Delivery:
    """A reserved message in a worker's hands, from its reservation until it is settled."""

    received: ReceivedMessage
    """The reservation (token, attempts, message)."""
    context: MessageContext[Any] | None = None
    """The handler's context, once the handler runs."""
    lease_until: float = 0.0
    """When the lease runs out, in event-loop time (``inf``: lost, not extended again)."""
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    """The task that runs the handler and settles the delivery."""
    trace: ProcessScope | None = field(default=None, repr=False)
    """Its ``process`` span while it runs (a no-op scope when tracing is off)."""
    holds_slot: bool = False
    """Whether its handler holds one of the worker's handler slots now."""


class DeliveryRunner:
    """Runs deliveries' handlers and settles the deliveries (see the module docstring).

    Args:
        coordinator: the queues the deliveries came from.
        agent_id: the agent the worker runs as (it sends the replies); a delivery is
            settled on the queue it came from (``ReceivedMessage.queue``).
        handlers: the worker's handler table.
        guard: the worker's circuit breaker and retry policy (a handler's own wins).
        stats: the worker's counters, updated in place.
        log: the worker's logger.
        tracing: the worker's spans (``process``, then ``ack``/``retry``/``dead_letter``).
        slots: how many handlers run at once (None: no limit here; the caller limits).
    """

    def __init__(
        self,
        coordinator: MessageCoordinator,
        agent_id: AgentId,
        handlers: HandlerTable,
        guard: CallGuard | None,
        stats: WorkerStats,
        log: Any,
        tracing: Tracing | None = None,
        slots: HandlerSlots | None = None,
    ) -> None:
        self._coordinator = coordinator
        self._agent_id = agent_id
        self._handlers = handlers
        self._guard = guard
        self._stats = stats
        self._log = log
        self._acks = AckBatcher(coordinator, str(agent_id))
        # The coordinator's metrics, when they time things: handler durations go there.
        self._timing = timing_of(coordinator.metrics)
        self._queue = str(agent_id)
        self._tracing = tracing if tracing is not None else Tracing()
        self._slots = slots

    async def run(self, delivery: Delivery) -> None:
        """Run the delivery's handler and settle the delivery; raises only when cancelled.

        With tracing on, all of it runs in the delivery's ``process`` span, a child of
        the span that sent the message (its context travels in the headers).
        """
        received = delivery.received
        if self._slots is not None:
            if not await self._slots.acquire():
                await self._give_back(received)
                return
            delivery.holds_slot = True
            if delivery.lease_until == float("inf"):
                # Its lease ran out while it waited (a stall) and the message went to
                # another consumer: running it here would run it twice.
                self._free_slot(delivery)
                self._stats.leases_lost += 1
                return
        try:
            trace = delivery.trace = self._tracing.process(received, self._queue_of(received))
            with trace:
                await self._run(delivery, trace)
        finally:
            self._free_slot(delivery)

    def _free_slot(self, delivery: Delivery) -> None:
        """Give the delivery's handler slot back (once): its handler is done."""
        if delivery.holds_slot and self._slots is not None:
            delivery.holds_slot = False
            self._slots.release()

    async def _give_back(self, received: ReceivedMessage) -> None:
        """The worker stopped before this delivery started: cut its lease, unhandled."""
        try:
            await self._coordinator.extend_lease(
                received.queue or self._agent_id, received.token, _GIVE_BACK_S
            )
        except Exception as exc:  # its lease runs out after the visibility timeout instead
            self._log.warning("give_back_failed", token=received.token, error=repr(exc))

    def _queue_of(self, received: ReceivedMessage) -> str:
        return self._queue if received.queue is None else str(received.queue)

    async def _run(self, delivery: Delivery, trace: ProcessScope) -> None:
        received = delivery.received
        message = received.message
        spec = self._handlers.find(message)
        try:
            if spec is None:
                kind = self._handlers.kind_of(message)
                raise PermanentError(
                    f"no handler for {message.message_type.value} messages"
                    + (f" of kind {kind!r}" if kind else "")
                )
            trace.handler(spec.name)
            payload = spec.parse_payload(message.payload)
            context: MessageContext[Any] = MessageContext(
                self._coordinator, self._agent_id, received, payload
            )
            delivery.context = context
            started = time.perf_counter()
            try:
                result = await self._call_handler(spec, context)
            except Exception as exc:
                self._observe(started, failure_of(exc).value)
                raise
            finally:
                self._free_slot(delivery)  # settling is the worker's work, not the handler's
            self._observe(started, "success")
        except asyncio.CancelledError:
            raise  # shutdown past the grace period: the message stays leased
        except Exception as exc:
            await self._fail(delivery, exc, self._delivery_log(received))
            return
        await self._succeed(delivery, result)

    def _observe(self, started: float, outcome: str) -> None:
        if self._timing is not None:
            self._timing.observe_handler(self._queue, time.perf_counter() - started, outcome)

    async def _call_handler(self, spec: HandlerSpec, context: MessageContext[Any]) -> Any:
        guard = spec.guard or self._guard
        if guard is None and spec.timeout is None:
            return await spec.fn(context)  # the common case: no wrapper coroutine

        async def invoke() -> Any:
            if spec.timeout is None:
                return await spec.fn(context)
            try:
                async with asyncio.timeout(spec.timeout):
                    return await spec.fn(context)
            except TimeoutError as exc:
                raise HandlerTimeoutError(spec.name, spec.timeout) from exc

        if guard is None:
            return await invoke()
        return await guard.run(spec.name, invoke, retry=True)

    def _delivery_log(self, received: ReceivedMessage) -> Any:
        """A logger bound to one delivery; built only when there is something to log."""
        return self._log.bind(message_id=received.message.message_id, attempt=received.attempts)

    async def _succeed(self, delivery: Delivery, result: Any) -> None:
        received = delivery.received
        try:
            if expects_reply(received.message) and await self._coordinator.reply(
                self._agent_id, received.message, result
            ):
                self._stats.replies += 1
            # After the reply (reply-before-ack), through the batcher: every ack that
            # is due while one ack round trip is in flight goes in the next one.
            with self._tracing.settle("ack", received, self._queue_of(received)) as trace:
                acked = await self._acks.ack(received.queue or self._agent_id, received.token)
                trace.done(acked)
        except Exception as exc:
            self._settle_failed(received, "ack", exc)
            return
        if acked:
            self._stats.succeeded += 1
        else:
            self._stats.leases_lost += 1
            self._delivery_log(received).warning(
                "ack_refused", reason="lease expired; the message was redelivered"
            )

    async def _fail(self, delivery: Delivery, exc: Exception, log: Any) -> None:
        received = delivery.received
        failure = failure_of(exc)
        final = (
            failure is FailureType.PERMANENT
            or received.attempts > self._coordinator.config.retry_attempts
        )
        error = f"{type(exc).__name__}: {exc}"
        if delivery.trace is not None:
            delivery.trace.failed(exc, failure, final)
        log.log(
            40 if final else 30,
            "handler_failed",
            failure=failure.value,
            final=final,
            error=error,
            exc_info=None if isinstance(exc, _EXPECTED_FAILURES) else exc,
        )
        try:
            if (
                final
                and expects_reply(received.message)
                and await self._coordinator.reply(
                    self._agent_id, received.message, error=exc, failure=failure
                )
            ):
                self._stats.replies += 1
            outcome = "dead_letter" if final else "retry"
            queue = self._queue_of(received)
            with self._tracing.settle(outcome, received, queue, failure, error) as trace:
                nacked = await self._coordinator.nack(
                    received.queue or self._agent_id, received.token, failure, error
                )
                trace.done(nacked)
        except Exception as settle_exc:
            self._settle_failed(received, "nack", settle_exc)
            return
        if not nacked:
            self._stats.leases_lost += 1
        elif final:
            self._stats.dead_lettered += 1
        else:
            self._stats.retried += 1

    def _settle_failed(self, received: ReceivedMessage, outcome: str, exc: Exception) -> None:
        """Count and log a failed settlement: the lease expires and the message comes back."""
        self._stats.settle_errors += 1
        log = self._delivery_log(received)
        if isinstance(exc, CoordinationError):
            log.warning("settle_failed", outcome=outcome, error=str(exc))
        else:  # not an outage: a bug or a broken back-end, with its traceback
            log.error("settle_failed", outcome=outcome, error=repr(exc), exc_info=exc)


class HandlerTimeoutError(TimeoutError):
    """A handler ran past its ``timeout=`` and was cancelled (failure ``timeout``)."""

    def __init__(self, handler: str, timeout: float) -> None:
        super().__init__(f"handler {handler} ran longer than {timeout:g}s")


_GIVE_BACK_S = 0.001
"""A delivery given back unstarted keeps its lease this long: the next read takes it."""

_EXPECTED_FAILURES = (PermanentError, ValidationError, HandlerTimeoutError)
"""Failures logged without a traceback: the handler or the payload said what went wrong."""


def failure_of(exc: Exception) -> FailureType:
    """How a handler's exception fails its delivery (permanent, timeout or transient)."""
    if isinstance(exc, PermanentError | ValidationError):
        return FailureType.PERMANENT
    if isinstance(exc, HandlerTimeoutError):
        return FailureType.TIMEOUT
    return FailureType.TRANSIENT


async def wait_in_flight(
    deliveries: Iterable[Delivery], grace: float, force: asyncio.Event
) -> set[asyncio.Task[None]]:
    """Wait for the deliveries' tasks until ``grace`` seconds pass or ``force`` is set.

    Returns the tasks still running then (a delivery waiting for a handler slot counts
    until the worker's stop gives it back).
    """
    running = {d.task for d in deliveries if d.task is not None}
    if not running:
        return set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    forced = asyncio.ensure_future(force.wait())
    try:
        while running and not force.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            done, _ = await asyncio.wait(
                running | {forced}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            running -= done
    finally:
        forced.cancel()
    return {task for task in running if not task.done()}
