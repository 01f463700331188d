"""The spans behind :mod:`tta_agent_coordination.observability.tracing` (internal).

The OpenTelemetry API modules (imported on first use), the semantic-convention attribute
names, and the scopes that start, make current and end one span each. Nothing here is
used unless ``opentelemetry-api`` is installed and a tracer provider is set: the facade,
:class:`~tta_agent_coordination.observability.tracing.Tracing`, hands out the shared
no-op scope (:data:`NO_SCOPE`) otherwise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from tta_agent_coordination.models import AgentMessage, FailureType, MessageResult
from tta_agent_coordination.replies import REPLY_STATUS_HEADER

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "ATTEMPT",
    "BATCH_COUNT",
    "CONVERSATION_ID",
    "DESTINATION",
    "ERROR_TYPE",
    "MAX_ERROR_CHARS",
    "MESSAGE_ID",
    "NO_SCOPE",
    "OPERATION_NAME",
    "OPERATION_TYPE",
    "REDIS",
    "SYSTEM",
    "OtelApi",
    "ProcessScope",
    "RequestScope",
    "SendTrace",
    "SettleScope",
    "carried_context",
    "message_attributes",
    "otel_api",
]

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

REDIS: Final = "redis"
MAX_ERROR_CHARS: Final = 1_000
"""Longest error text put in a span attribute (a traceback-sized message is cut)."""


class OtelApi:
    """The ``opentelemetry`` modules, imported once on first use."""

    def __init__(self) -> None:
        from opentelemetry import context, propagate, trace

        self.context = context
        self.propagate = propagate
        self.trace = trace
        self.no_tracing = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        # OTEL_PYTHON_TRACER_PROVIDER names a provider the API loads on first use.
        self._from_environment = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ

    def global_provider(self) -> Any | None:
        """The application's global tracer provider; None while none is set.

        Asked on every traced operation until the application sets one, so it avoids
        ``get_tracer_provider()``, which looks up the environment on each call until
        then (~0.8 us, the whole cost of an untraced send otherwise): the API's own
        global is read first. Should a release rename it, this is as correct, only
        slower.
        """
        current = getattr(self.trace, "_TRACER_PROVIDER", _UNKNOWN)
        if current is None and not self._from_environment:
            return None
        provider = self.trace.get_tracer_provider()
        return None if isinstance(provider, self.no_tracing) else provider


_UNKNOWN = object()


_api_cache: list[OtelApi | None] = []


def otel_api() -> OtelApi | None:
    """The API modules, or None when ``opentelemetry-api`` is not installed."""
    if not _api_cache:
        try:
            _api_cache.append(OtelApi())
        except ImportError:
            _api_cache.append(None)
    return _api_cache[0]


def message_attributes(
    message: AgentMessage, destination: str, operation_type: str, operation_name: str
) -> dict[str, Any]:
    """The attributes of a span about one message."""
    attributes: dict[str, Any] = {
        SYSTEM: REDIS,
        DESTINATION: destination,
        OPERATION_TYPE: operation_type,
        OPERATION_NAME: operation_name,
        MESSAGE_ID: message.message_id,
    }
    if message.correlation_id is not None:
        attributes[CONVERSATION_ID] = message.correlation_id
    return attributes


def carried_context(api: OtelApi, headers: Mapping[str, str]) -> Any:
    """The valid span context ``headers`` carry, else None."""
    if not headers:
        return None
    context: Context = api.propagate.extract(headers)
    span_context = api.trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


class _Scope:
    """A span made current for a ``with`` block, then ended (shared by the scopes)."""

    __slots__ = ("_api", "_span", "_token")

    def __init__(self, api: OtelApi, span: Span) -> None:
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

    async def __aenter__(self) -> Self:
        # The same span in an ``async with`` beside other async context managers.
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

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
        span_context = carried_context(self._api, reply.headers)
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


NO_SCOPE = _NoScope()
"""The one no-op scope, handed out for every span while tracing is off."""


class SendTrace(_Scope):
    """The spans of one send (see :meth:`Tracing.start_send`).

    One message: one ``PRODUCER`` span ``send <queue>``, the creation context it carries.
    Several: a ``create <queue>`` ``PRODUCER`` span per message (ended at once, each
    message's own creation context) and one ``CLIENT`` span ``send`` that links to
    them, as the messaging conventions describe batch sends.
    """

    __slots__ = ("messages",)

    def __init__(self, tracer: Tracer, api: OtelApi, messages: Sequence[AgentMessage]) -> None:
        trace = api.trace
        if len(messages) == 1:
            message = messages[0]
            queue = str(message.recipient)
            span = tracer.start_span(
                f"send {queue}",
                kind=trace.SpanKind.PRODUCER,
                attributes=message_attributes(message, queue, "send", "send"),
            )
            self.messages: list[AgentMessage] = [_carrying(api, message, span)]
            super().__init__(api, span)
            return
        copies: list[AgentMessage] = []
        links: list[Any] = []
        now = time.time_ns()
        for message in messages:
            queue = str(message.recipient)
            create = tracer.start_span(
                f"create {queue}",
                kind=trace.SpanKind.PRODUCER,
                attributes=message_attributes(message, queue, "create", "create"),
                start_time=now,
            )
            copies.append(_carrying(api, message, create))
            links.append(trace.Link(create.get_span_context()))
            create.end()
        queues = {str(m.recipient) for m in messages}
        attributes: dict[str, Any] = {
            SYSTEM: REDIS,
            OPERATION_TYPE: "send",
            OPERATION_NAME: "send",
            BATCH_COUNT: len(messages),
        }
        name = "send"
        if len(queues) == 1:
            queue = queues.pop()
            attributes[DESTINATION] = queue
            name = f"send {queue}"
        span = tracer.start_span(
            name, kind=trace.SpanKind.CLIENT, attributes=attributes, links=links
        )
        self.messages = copies
        super().__init__(api, span)

    def record(self, results: Sequence[MessageResult]) -> None:
        """Record the send's outcome (its ``MessageResult`` list, in order)."""
        span = self._span
        failed = [r for r in results if not r.delivered]
        if len(results) == 1:
            span.set_attribute("tta.send.status", results[0].status.value)
        else:
            span.set_attribute("tta.send.delivered", len(results) - len(failed))
        if failed:
            first = failed[0]
            description = f"{len(failed)} of {len(results)} not delivered: {first.error}"
            self._fail(first.status.value, description)


def _carrying(api: OtelApi, message: AgentMessage, span: Span) -> AgentMessage:
    """A copy of ``message`` whose headers carry ``span``'s context."""
    headers = dict(message.headers)
    api.propagate.inject(headers, context=api.trace.set_span_in_context(span))
    return message.model_copy(update={"headers": headers})
