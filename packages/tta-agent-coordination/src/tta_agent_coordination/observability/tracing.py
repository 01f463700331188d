"""OpenTelemetry tracing of messages: a no-op unless ``opentelemetry-api`` is installed.

The library depends on the OpenTelemetry **API** only, as the optional extra ``otel``
(``pip install 'tta-agent-coordination[otel]'``); the application chooses the SDK and the
exporter. Nothing here imports ``opentelemetry`` before the first traced operation,
and without the package (or without a tracer provider: the global one is still the
API's proxy) every operation costs one attribute check.

What is traced (docs/observability.md, "Tracing"), with the messaging semantic
conventions (``messaging.system`` = ``redis``, ``messaging.destination.name`` = the
queue, ``messaging.message.id``, ``messaging.operation.type``/``name``):

- a send: a ``PRODUCER`` span ``send <queue>`` per message, whose context travels in
  the message's headers (W3C ``traceparent``/``tracestate``, through the global
  propagator); a batch of several messages gets one ``create <queue>`` ``PRODUCER`` span
  per message (its creation context) and one ``CLIENT`` span ``send`` linking to them;
- a worker's read: a ``CLIENT`` span ``receive <queue>`` per non-empty batch, linking to
  each message's creation context;
- handling: a ``CONSUMER`` span ``process <queue>`` per delivery, a **child** of the
  message's creation context, current while the handler runs (what the handler sends
  descends from it), with the delivery attempt;
- settling: ``ack``, ``retry`` or ``dead_letter`` ``CLIENT`` spans (operation type
  ``settle``), children of the ``process`` span;
- request/reply: a ``CLIENT`` span ``request <recipient>`` around the request's send and
  its wait, and a ``PRODUCER`` span ``reply <requester>`` whose context the reply carries;
  a reply another module delivers itself (``coordinator.deliver_reply``, to any
  coordinator's reply inbox) gets the same ``reply`` span, a child of the caller's
  current span.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from tta_agent_coordination.models import AgentMessage, FailureType, ReceivedMessage
from tta_agent_coordination.observability.tracing_scopes import (
    ATTEMPT,
    BATCH_COUNT,
    CONVERSATION_ID,
    DESTINATION,
    MAX_ERROR_CHARS,
    MESSAGE_ID,
    NO_SCOPE,
    OPERATION_NAME,
    OPERATION_TYPE,
    REDIS,
    SYSTEM,
    ProcessScope,
    RequestScope,
    SendTrace,
    SettleScope,
    carried_context,
    message_attributes,
    otel_api,
)
from tta_agent_coordination.replies import REPLY_STATUS_HEADER

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = [
    "ATTEMPT",
    "CONVERSATION_ID",
    "DESTINATION",
    "INSTRUMENTATION_NAME",
    "MESSAGE_ID",
    "OPERATION_NAME",
    "OPERATION_TYPE",
    "SYSTEM",
    "ProcessScope",
    "RequestScope",
    "SendTrace",
    "SettleScope",
    "Tracing",
    "tracing_available",
]

INSTRUMENTATION_NAME: Final = "tta_agent_coordination"
"""The instrumentation scope of every span (the tracer's name)."""

_NO_PROCESS: ProcessScope = NO_SCOPE
_NO_SETTLE: SettleScope = NO_SCOPE
_NO_REQUEST: RequestScope = NO_SCOPE


def _version() -> str | None:
    """The installed package's version, for the spans' instrumentation scope."""
    try:
        return importlib.metadata.version("tta-agent-coordination")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return None


def tracing_available() -> bool:
    """Whether ``opentelemetry-api`` can be imported (the ``otel`` extra is installed)."""
    return otel_api() is not None


class Tracing:
    """The spans of one coordinator or worker (see the module docstring).

    Args:
        tracer_provider: an OpenTelemetry ``TracerProvider`` (an SDK one with an
            exporter); None uses the global one (``trace.set_tracer_provider``) from the
            moment the application sets it. A ``NoOpTracerProvider`` turns tracing off.

    Every method is cheap when tracing is off. Spans only observe: they never change
    what an operation does or raises (the SDK handles its exporters' errors itself).
    """

    __slots__ = ("_off", "_provider", "_tracer")

    def __init__(self, tracer_provider: Any | None = None) -> None:
        self._provider = tracer_provider
        self._tracer: Tracer | None = None
        self._off = False

    def tracer(self) -> Tracer | None:
        """The tracer to use now; None while there is nothing to trace to."""
        tracer = self._tracer
        if tracer is not None or self._off:
            return tracer
        api = otel_api()
        if api is None:
            self._off = True
            return None
        provider = self._provider
        if provider is None:
            # None until the application sets its provider: ask again next time.
            provider = api.global_provider()
            if provider is None:
                return None
        elif isinstance(provider, api.no_tracing):
            self._off = True  # an explicit no-op provider: off for good
            return None
        self._tracer = provider.get_tracer(INSTRUMENTATION_NAME, _version())
        return self._tracer

    # --- sending --------------------------------------------------------------------------

    def start_send(self, messages: Sequence[AgentMessage]) -> SendTrace | None:
        """Start the spans of one send; None when tracing is off.

        ``SendTrace.messages`` are copies of ``messages`` carrying their creation
        context in ``headers``: send those. The caller's messages are not changed.
        """
        tracer = self.tracer()
        api = otel_api()
        if tracer is None or api is None:
            return None
        return SendTrace(tracer, api, messages)

    # --- consuming ------------------------------------------------------------------------

    def received(self, batch: Sequence[ReceivedMessage], started_ns: int) -> None:
        """Record a worker's read that reserved ``batch`` (begun at ``started_ns``, epoch ns)."""
        tracer = self.tracer()
        api = otel_api()
        if tracer is None or api is None or not batch:
            return
        queues = {str(r.queue) for r in batch if r.queue is not None}
        attributes: dict[str, Any] = {
            SYSTEM: REDIS,
            OPERATION_TYPE: "receive",
            OPERATION_NAME: "receive",
            BATCH_COUNT: len(batch),
        }
        name = "receive"
        if len(queues) == 1:
            queue = queues.pop()
            attributes[DESTINATION] = queue
            name = f"receive {queue}"
        links = [
            api.trace.Link(span_context)
            for r in batch
            if (span_context := carried_context(api, r.message.headers)) is not None
        ]
        span = tracer.start_span(
            name,
            kind=api.trace.SpanKind.CLIENT,
            attributes=attributes,
            links=links,
            start_time=started_ns,
        )
        span.end()

    def process(self, received: ReceivedMessage, queue: str) -> ProcessScope:
        """The ``process`` span of one delivery (a no-op scope when tracing is off).

        Use it as a context manager around the handler and the settlement: the span is
        current in between, a child of the context the message carries.
        """
        tracer = self.tracer()
        api = otel_api()
        if tracer is None or api is None:
            return _NO_PROCESS
        message = received.message
        parent = api.propagate.extract(message.headers)
        attributes = message_attributes(message, queue, "process", "process")
        attributes[ATTEMPT] = received.attempts
        attributes["tta.message.type"] = message.message_type.value
        span = tracer.start_span(
            f"process {queue}",
            context=parent,
            kind=api.trace.SpanKind.CONSUMER,
            attributes=attributes,
        )
        return ProcessScope(api, span)

    def settle(
        self,
        operation: str,
        received: ReceivedMessage,
        queue: str,
        failure: FailureType | None = None,
        error: str | None = None,
    ) -> SettleScope:
        """A ``settle`` span: ``ack``, ``retry`` or ``dead_letter`` (no-op when off).

        ``failure`` and ``error`` are the handler's, for a retry or a dead letter.
        """
        tracer = self.tracer()
        api = otel_api()
        if tracer is None or api is None:
            return _NO_SETTLE
        message = received.message
        attributes = message_attributes(message, queue, "settle", operation)
        attributes[ATTEMPT] = received.attempts
        if failure is not None:
            attributes["tta.failure.type"] = failure.value
        if error is not None:
            attributes["tta.error"] = error[:MAX_ERROR_CHARS]
        span = tracer.start_span(
            f"{operation} {queue}", kind=api.trace.SpanKind.CLIENT, attributes=attributes
        )
        return SettleScope(api, span)

    # --- request / reply ------------------------------------------------------------------

    def request(self, request: AgentMessage) -> RequestScope:
        """The ``request`` span around a request's send and its wait (no-op when off)."""
        tracer = self.tracer()
        api = otel_api()
        if tracer is None or api is None:
            return _NO_REQUEST
        recipient = str(request.recipient)
        attributes = message_attributes(request, recipient, "send", "request")
        span = tracer.start_span(
            f"request {recipient}", kind=api.trace.SpanKind.CLIENT, attributes=attributes
        )
        return RequestScope(api, span)

    def reply(self, reply: AgentMessage, inbox: str | None) -> SettleScope:
        """The ``reply`` span; injects its context into ``reply.headers`` (in place).

        ``reply`` is the worker's own new message (``replies.build_reply``); ``inbox``
        is the requester's reply inbox when it goes there, None when it is sent to the
        ``reply_to`` queue.
        """
        tracer = self.tracer()
        api = otel_api()
        if tracer is None or api is None:
            return _NO_SETTLE
        destination = str(reply.recipient)
        attributes = message_attributes(reply, destination, "send", "reply")
        if inbox is not None:
            attributes["tta.reply.inbox"] = inbox
        status = reply.headers.get(REPLY_STATUS_HEADER)
        if status is not None:
            attributes["tta.reply.status"] = status
        span = tracer.start_span(
            f"reply {destination}", kind=api.trace.SpanKind.PRODUCER, attributes=attributes
        )
        api.propagate.inject(reply.headers, context=api.trace.set_span_in_context(span))
        return SettleScope(api, span)

    def delivered_reply(self, reply: AgentMessage, inbox: str) -> tuple[AgentMessage, SettleScope]:
        """The ``reply`` span of a reply the caller built and delivers to ``inbox`` itself.

        For ``coordinator.deliver_reply``: returns a copy of ``reply`` whose headers carry
        the span's context (deliver that one; the caller's message is not changed) and
        the span's scope, to enter around the delivery. With tracing off, ``reply``
        itself and a no-op scope.
        """
        if self.tracer() is None:
            return reply, _NO_SETTLE
        carried = reply.model_copy(update={"headers": dict(reply.headers)})
        return carried, self.reply(carried, inbox)
