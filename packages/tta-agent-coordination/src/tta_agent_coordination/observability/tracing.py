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
  its wait, and a ``PRODUCER`` span ``reply <requester>`` whose context the reply carries.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from tta_agent_coordination.models import AgentMessage, FailureType, ReceivedMessage
from tta_agent_coordination.replies import REPLY_STATUS_HEADER

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "ATTEMPT",
    "CONVERSATION_ID",
    "DESTINATION",
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

# Semantic-convention attribute names (OpenTelemetry messaging conventions).
SYSTEM: Final = "messaging.system"
DESTINATION: Final = "messaging.destination.name"
MESSAGE_ID: Final = "messaging.message.id"
CONVERSATION_ID: Final = "messaging.message.conversation_id"
OPERATION_TYPE: Final = "messaging.operation.type"
OPERATION_NAME: Final = "messaging.operation.name"
BATCH_COUNT: Final = "messaging.batch.message_count"
ERROR_TYPE: Final = "error.type"
ATTEMPT: Final = "messaging.redis.message.delivery_attempt"
"""The delivery attempt (1 on the first delivery), named after the conventions' only
system-specific one (``messaging.gcp_pubsub.message.delivery_attempt``)."""

_REDIS: Final = "redis"
_MAX_ERROR_CHARS: Final = 1_000
"""Longest error text put in a span attribute (a traceback-sized message is cut)."""


class _Api:
    """The ``opentelemetry`` modules, imported once on first use."""

    def __init__(self) -> None:
        from opentelemetry import context, propagate, trace

        self.context = context
        self.propagate = propagate
        self.trace = trace
        self.no_tracing = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


_api_cache: list[_Api | None] = []


def _api() -> _Api | None:
    """The API modules, or None when ``opentelemetry-api`` is not installed."""
    if not _api_cache:
        try:
            _api_cache.append(_Api())
        except ImportError:
            _api_cache.append(None)
    return _api_cache[0]


def _version() -> str | None:
    """The installed package's version, for the spans' instrumentation scope."""
    try:
        return importlib.metadata.version("tta-agent-coordination")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return None


def tracing_available() -> bool:
    """Whether ``opentelemetry-api`` can be imported (the ``otel`` extra is installed)."""
    return _api() is not None


class Tracing:
    """The spans of one coordinator or worker (see the module docstring).

    Args:
        tracer_provider: an OpenTelemetry ``TracerProvider`` (an SDK one with an
            exporter); None uses the global one (``trace.set_tracer_provider``) from the
            moment the application sets it. A ``NoOpTracerProvider`` turns tracing off.

    Every method is cheap when tracing is off and none raises because of tracing: the
    SDK's span processors and exporters run outside the caller's error handling.
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
        api = _api()
        if api is None:
            self._off = True
            return None
        provider = self._provider
        explicit = provider is not None
        if provider is None:
            provider = api.trace.get_tracer_provider()
        if isinstance(provider, api.no_tracing):
            # An explicit no-op provider stays off; the global proxy may be replaced by
            # the application's provider later (set_tracer_provider), so ask again then.
            self._off = explicit
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
        api = _api()
        if tracer is None or api is None:
            return None
        return SendTrace(tracer, api, messages)

    # --- consuming ------------------------------------------------------------------------

    def received(self, batch: Sequence[ReceivedMessage], started_ns: int) -> None:
        """Record a worker's read that reserved ``batch`` (begun at ``started_ns``, epoch ns)."""
        tracer = self.tracer()
        api = _api()
        if tracer is None or api is None or not batch:
            return
        queues = {str(r.queue) for r in batch if r.queue is not None}
        attributes: dict[str, Any] = {
            SYSTEM: _REDIS,
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
            if (span_context := _span_context(api, r.message.headers)) is not None
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
        api = _api()
        if tracer is None or api is None:
            return _NO_PROCESS
        message = received.message
        parent = api.propagate.extract(message.headers)
        attributes = _message_attributes(message, queue, "process", "process")
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
        api = _api()
        if tracer is None or api is None:
            return _NO_SETTLE
        message = received.message
        attributes = _message_attributes(message, queue, "settle", operation)
        attributes[ATTEMPT] = received.attempts
        if failure is not None:
            attributes["tta.failure.type"] = failure.value
        if error is not None:
            attributes["tta.error"] = error[:_MAX_ERROR_CHARS]
        span = tracer.start_span(
            f"{operation} {queue}", kind=api.trace.SpanKind.CLIENT, attributes=attributes
        )
        return SettleScope(api, span)

    # --- request / reply ------------------------------------------------------------------

    def request(self, request: AgentMessage) -> RequestScope:
        """The ``request`` span around a request's send and its wait (no-op when off)."""
        tracer = self.tracer()
        api = _api()
        if tracer is None or api is None:
            return _NO_REQUEST
        recipient = str(request.recipient)
        attributes = _message_attributes(request, recipient, "send", "request")
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
        api = _api()
        if tracer is None or api is None:
            return _NO_SETTLE
        destination = str(reply.recipient)
        attributes = _message_attributes(reply, destination, "send", "reply")
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


def _message_attributes(
    message: AgentMessage, destination: str, operation_type: str, operation_name: str
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        SYSTEM: _REDIS,
        DESTINATION: destination,
        OPERATION_TYPE: operation_type,
        OPERATION_NAME: operation_name,
        MESSAGE_ID: message.message_id,
    }
    if message.correlation_id is not None:
        attributes[CONVERSATION_ID] = message.correlation_id
    return attributes


def _span_context(api: _Api, headers: Mapping[str, str]) -> Any:
    """The valid span context ``headers`` carry, else None."""
    if not headers:
        return None
    context: Context = api.propagate.extract(headers)
    span_context = api.trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


class _Scope:
    """A span made current for a ``with`` block, then ended (shared by the scopes)."""

    __slots__ = ("_api", "_span", "_token")

    def __init__(self, api: _Api, span: Span) -> None:
        self._api = api
        self._span = span
        self._token: Any = None

    def __enter__(self) -> Self:
        api = self._api
        self._token = api.context.attach(api.trace.set_span_in_context(self._span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is not None:
                if isinstance(exc, Exception):
                    self._error(exc)
                else:  # a cancelled task: the message stays leased
                    self._span.set_attribute("tta.cancelled", True)
        finally:
            if self._token is not None:
                self._api.context.detach(self._token)
            self._span.end()

    def _error(self, exc: BaseException, description: str | None = None) -> None:
        span = self._span
        span.record_exception(exc)
        span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
        status = self._api.trace.StatusCode.ERROR
        span.set_status(self._api.trace.Status(status, description or f"{exc}"))

    def _fail(self, error_type: str, description: str) -> None:
        span = self._span
        span.set_attribute(ERROR_TYPE, error_type)
        span.set_status(self._api.trace.Status(self._api.trace.StatusCode.ERROR, description))


class ProcessScope(_Scope):
    """The ``process`` span of one delivery (see :meth:`Tracing.process`)."""

    __slots__ = ()

    def handler(self, name: str) -> None:
        """Name the handler that runs the message."""
        self._span.set_attribute("tta.handler", name)

    def failed(self, exc: BaseException, failure: FailureType, final: bool) -> None:
        """The handler failed: retried later, or dead-lettered when ``final``."""
        self._span.set_attribute("tta.failure.type", failure.value)
        self._span.set_attribute("tta.failure.final", final)
        self._error(exc, f"{type(exc).__name__}: {exc}")


class SettleScope(_Scope):
    """A settle (``ack``/``retry``/``dead_letter``) or ``reply`` span."""

    __slots__ = ()

    def done(self, settled: bool) -> None:
        """Record whether it took effect (False: the lease was lost, or not delivered)."""
        self._span.set_attribute("tta.settled", settled)
        if not settled:
            self._fail("not_settled", "the lease was lost, or the reply was not delivered")


class RequestScope(_Scope):
    """The requester's ``request`` span (see :meth:`Tracing.request`)."""

    __slots__ = ()

    def replied(self, reply: AgentMessage) -> None:
        """The reply arrived (an error reply marks the span failed)."""
        span = self._span
        span.set_attribute("tta.reply.message_id", reply.message_id)
        status = reply.headers.get(REPLY_STATUS_HEADER)
        if status is not None:
            span.set_attribute("tta.reply.status", status)
        if status == "error":
            self._fail("remote_handler_error", "the handler answered with an error")
        span_context = _span_context(self._api, reply.headers)
        if span_context is not None:
            span.add_link(span_context, {"tta.link": "reply"})


class _NoScope(ProcessScope, SettleScope, RequestScope):
    """Tracing is off: every method does nothing (one shared instance per scope type)."""

    __slots__ = ()

    def __init__(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def handler(self, name: str) -> None:
        """Nothing to record."""

    def failed(self, exc: BaseException, failure: FailureType, final: bool) -> None:
        """Nothing to record."""

    def done(self, settled: bool) -> None:
        """Nothing to record."""

    def replied(self, reply: AgentMessage) -> None:
        """Nothing to record."""


_NO_SCOPE = _NoScope()
_NO_PROCESS: ProcessScope = _NO_SCOPE
_NO_SETTLE: SettleScope = _NO_SCOPE
_NO_REQUEST: RequestScope = _NO_SCOPE


class SendTrace(AbstractContextManager["SendTrace"]):
    """The spans of one send (see :meth:`Tracing.start_send`).

    One message: one ``PRODUCER`` span ``send <queue>``, the creation context it carries.
    Several: a ``create <queue>`` ``PRODUCER`` span per message (ended at once, each
    message's own creation context) and one ``CLIENT`` span ``send`` that links to
    them, as the messaging conventions describe batch sends.
    """

    __slots__ = ("_api", "_span", "_token", "messages")

    def __init__(self, tracer: Tracer, api: _Api, messages: Sequence[AgentMessage]) -> None:
        self._api = api
        self._token: Any = None
        trace = api.trace
        if len(messages) == 1:
            message = messages[0]
            queue = str(message.recipient)
            span = tracer.start_span(
                f"send {queue}",
                kind=trace.SpanKind.PRODUCER,
                attributes=_message_attributes(message, queue, "send", "send"),
            )
            self.messages: list[AgentMessage] = [_carrying(api, message, span)]
            self._span = span
            return
        copies: list[AgentMessage] = []
        links: list[Any] = []
        now = time.time_ns()
        for message in messages:
            queue = str(message.recipient)
            create = tracer.start_span(
                f"create {queue}",
                kind=trace.SpanKind.PRODUCER,
                attributes=_message_attributes(message, queue, "create", "create"),
                start_time=now,
            )
            copies.append(_carrying(api, message, create))
            links.append(trace.Link(create.get_span_context()))
            create.end()
        queues = {str(m.recipient) for m in messages}
        attributes: dict[str, Any] = {
            SYSTEM: _REDIS,
            OPERATION_TYPE: "send",
            OPERATION_NAME: "send",
            BATCH_COUNT: len(messages),
        }
        name = "send"
        if len(queues) == 1:
            queue = queues.pop()
            attributes[DESTINATION] = queue
            name = f"send {queue}"
        self._span = tracer.start_span(
            name, kind=trace.SpanKind.CLIENT, attributes=attributes, links=links
        )
        self.messages = copies

    def __enter__(self) -> Self:
        api = self._api
        self._token = api.context.attach(api.trace.set_span_in_context(self._span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if isinstance(exc, Exception):
                span = self._span
                span.record_exception(exc)
                span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
                span.set_status(self._api.trace.Status(self._api.trace.StatusCode.ERROR, f"{exc}"))
        finally:
            if self._token is not None:
                self._api.context.detach(self._token)
            self._span.end()

    def record(self, results: Sequence[Any]) -> None:
        """Record the send's outcome (its ``MessageResult`` list, in order)."""
        span = self._span
        failed = [r for r in results if not r.delivered]
        if len(results) == 1:
            span.set_attribute("tta.send.status", results[0].status.value)
        else:
            span.set_attribute("tta.send.delivered", len(results) - len(failed))
        if failed:
            first = failed[0]
            span.set_attribute(ERROR_TYPE, first.status.value)
            description = f"{len(failed)} of {len(results)} not delivered: {first.error}"
            span.set_status(self._api.trace.Status(self._api.trace.StatusCode.ERROR, description))


def _carrying(api: _Api, message: AgentMessage, span: Span) -> AgentMessage:
    """A copy of ``message`` whose headers carry ``span``'s context."""
    headers = dict(message.headers)
    api.propagate.inject(headers, context=api.trace.set_span_in_context(span))
    return message.model_copy(update={"headers": headers})
