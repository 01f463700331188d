"""OpenTelemetry tracing (``observability/tracing.py``) through real coordinators and workers.

Spans go to the SDK's in-memory exporter through a provider of each test's own (the
global provider is never set in this process). The chains are checked by parent span
ids: a handler's ``process`` span descends from the span that sent its message, across
workers and across a request and its reply, on FakeRedis and on the real Redis.
``test_tracing_facade.py`` tests the facade itself (tracing off, the API missing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    MessageContext,
    MessageType,
    PermanentError,
    RedisMessageCoordinator,
)
from tta_agent_coordination.errors import RemoteHandlerError, RequestTimeoutError
from tta_agent_coordination.models import FailureType
from tta_agent_coordination.observability.tracing import (
    ATTEMPT,
    CONVERSATION_ID,
    DESTINATION,
    MESSAGE_ID,
    OPERATION_NAME,
    OPERATION_TYPE,
    SYSTEM,
)
from tta_agent_coordination.replies import REPLY_INBOX_HEADER

from .conftest import WorkerFactory, eventually
from .tracing_support import (
    ALPHA,
    BETA,
    CALC,
    CLIENT,
    attrs,
    event,
    finished,
    in_memory_provider,
    is_child,
    one,
    parent_id,
    span_id,
    traceparent_span_id,
)


@pytest.fixture
def traced_parts() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    provider, exporter = in_memory_provider()
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def provider(traced_parts: tuple[TracerProvider, InMemorySpanExporter]) -> TracerProvider:
    return traced_parts[0]


@pytest.fixture
def exporter(traced_parts: tuple[TracerProvider, InMemorySpanExporter]) -> InMemorySpanExporter:
    return traced_parts[1]


@pytest.fixture
async def traced(
    coordination_redis: Any, key_prefix: str, provider: TracerProvider
) -> AsyncIterator[RedisMessageCoordinator]:
    coord = RedisMessageCoordinator(
        coordination_redis,
        key_prefix=key_prefix,
        backoff_base=0.05,
        backoff_factor=1.0,
        backoff_max=0.05,
        retry_attempts=2,
        tracer_provider=provider,
    )
    yield coord
    await coord.aclose()


async def test_a_handlers_send_descends_from_the_span_that_sent_its_message(
    traced: RedisMessageCoordinator,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    make_worker: WorkerFactory,
) -> None:
    alpha = make_worker(ALPHA, coordinator=traced, registry=None, tracer_provider=provider)
    beta = make_worker(BETA, coordinator=traced, registry=None, tracer_provider=provider)
    landed: list[AgentMessage] = []

    @alpha.on_event()
    async def forward(ctx: MessageContext[Any]) -> None:
        await ctx.send(BETA, {"hop": 2}, headers={"x-app": "kept"})

    @beta.on_event()
    async def land(ctx: MessageContext[Any]) -> None:
        landed.append(ctx.message)

    await alpha.start()
    await beta.start()
    with provider.get_tracer("test").start_as_current_span("user action") as root:
        first = event(CLIENT, ALPHA, hop=1)
        result = await traced.send_message(CLIENT, ALPHA, first)
    assert result.delivered
    assert "traceparent" not in first.headers  # the caller's message is not changed
    await eventually(lambda: len(finished(exporter, "ack beta:b1")) == 1)

    send_alpha = one(exporter, "send alpha:a1")
    process_alpha = one(exporter, "process alpha:a1")
    send_beta = one(exporter, "send beta:b1")
    process_beta = one(exporter, "process beta:b1")
    assert parent_id(send_alpha) == root.get_span_context().span_id
    assert is_child(process_alpha, send_alpha)
    assert is_child(send_beta, process_alpha)
    assert is_child(process_beta, send_beta)
    assert is_child(one(exporter, "ack alpha:a1"), process_alpha)
    assert is_child(one(exporter, "ack beta:b1"), process_beta)
    assert (send_beta.kind, process_beta.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)

    # The message carries its send span's context, beside the handler's own headers.
    (message,) = landed
    assert traceparent_span_id(message) == span_id(send_beta)
    assert message.headers["x-app"] == "kept"
    assert attrs(process_beta) == {
        SYSTEM: "redis",
        DESTINATION: "beta:b1",
        OPERATION_TYPE: "process",
        OPERATION_NAME: "process",
        MESSAGE_ID: message.message_id,
        CONVERSATION_ID: first.message_id,
        ATTEMPT: 1,
        "tta.message.type": "event",
        "tta.handler": land.__qualname__,
    }
    assert attrs(send_beta)[OPERATION_TYPE] == "send"
    assert attrs(send_beta)["tta.send.status"] == "enqueued"
    assert one(exporter, "ack beta:b1").attributes == {
        SYSTEM: "redis",
        DESTINATION: "beta:b1",
        OPERATION_TYPE: "settle",
        OPERATION_NAME: "ack",
        MESSAGE_ID: message.message_id,
        CONVERSATION_ID: first.message_id,
        ATTEMPT: 1,
        "tta.settled": True,
    }

    # The worker's read: a receive span linking to the message's creation context.
    (receive,) = [
        s
        for s in finished(exporter, "receive beta:b1")
        if any(link.context.span_id == span_id(send_beta) for link in s.links)
    ]
    assert receive.kind is SpanKind.CLIENT
    assert attrs(receive)[OPERATION_TYPE] == "receive"
    assert attrs(receive)["messaging.batch.message_count"] >= 1


async def test_request_reply_chain(
    traced: RedisMessageCoordinator,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    make_worker: WorkerFactory,
) -> None:
    calc = make_worker(CALC, coordinator=traced, registry=None, tracer_provider=provider)

    @calc.on_request()
    async def add(ctx: MessageContext[Any]) -> dict[str, int]:
        return {"sum": ctx.payload["a"] + ctx.payload["b"]}

    await calc.start()
    with provider.get_tracer("test").start_as_current_span("user action") as root:
        reply = await traced.request(CLIENT, CALC, {"a": 1, "b": 2}, timeout=10)
    assert reply.payload == {"sum": 3}
    await eventually(lambda: len(finished(exporter, "ack calc:k1")) == 1)

    request = one(exporter, "request calc:k1")
    send = one(exporter, "send calc:k1")
    process = one(exporter, "process calc:k1")
    answer = one(exporter, "reply client:c1")
    assert parent_id(request) == root.get_span_context().span_id
    assert is_child(send, request)
    assert is_child(process, send)
    assert is_child(answer, process)
    assert is_child(one(exporter, "ack calc:k1"), process)
    assert request.kind is SpanKind.CLIENT
    assert answer.kind is SpanKind.PRODUCER
    # The reply carries the reply span's context; the request span links to it.
    assert traceparent_span_id(reply) == span_id(answer)
    assert [link.context.span_id for link in request.links] == [span_id(answer)]
    assert attrs(request)["tta.reply.message_id"] == reply.message_id
    assert attrs(request)["tta.reply.status"] == "ok"
    assert request.status.status_code is StatusCode.UNSET
    assert attrs(answer)["tta.reply.inbox"] == traced.reply_inbox.inbox
    assert attrs(answer)[CONVERSATION_ID] == reply.correlation_id


async def test_a_reply_sent_to_the_reply_to_queue_descends_from_the_handler(
    traced: RedisMessageCoordinator,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    make_worker: WorkerFactory,
) -> None:
    calc = make_worker(CALC, coordinator=traced, registry=None, tracer_provider=provider)

    @calc.on_request()
    async def echo(ctx: MessageContext[Any]) -> dict[str, Any]:
        return dict(ctx.payload)

    await calc.start()
    request = AgentMessage(
        sender=CLIENT,
        recipient=CALC,
        message_type=MessageType.REQUEST,
        payload={"q": 1},
        reply_to=CLIENT,
    )
    assert REPLY_INBOX_HEADER not in request.headers
    await traced.send_message(CLIENT, CALC, request)
    received = None

    async def reply_arrived() -> bool:
        nonlocal received
        received = await traced.receive(CLIENT, block=0.2)
        return received is not None

    await eventually(reply_arrived)
    assert received is not None
    await eventually(lambda: len(finished(exporter, "ack calc:k1")) == 1)
    answer = one(exporter, "reply client:c1")
    send = one(exporter, "send client:c1")
    assert is_child(answer, one(exporter, "process calc:k1"))
    assert is_child(send, answer)
    assert traceparent_span_id(received.message) == span_id(send)
    assert attrs(answer)["tta.settled"] is True
    assert "tta.reply.inbox" not in attrs(answer)


async def test_retries_then_dead_letter_have_their_spans(
    traced: RedisMessageCoordinator,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker(ALPHA, coordinator=traced, registry=None, tracer_provider=provider)

    @worker.on_event()
    async def boom(ctx: MessageContext[Any]) -> None:
        raise RuntimeError("model overloaded")

    await worker.start()
    message = event(CLIENT, ALPHA)
    await traced.send_message(CLIENT, ALPHA, message)  # no span around: the send is a root
    await eventually(lambda: len(finished(exporter, "dead_letter alpha:a1")) == 1)

    send = one(exporter, "send alpha:a1")
    assert send.parent is None
    retries = sorted(finished(exporter, "retry alpha:a1"), key=lambda s: attrs(s)[ATTEMPT])
    dead = one(exporter, "dead_letter alpha:a1")
    assert [attrs(s)[ATTEMPT] for s in retries] == [1, 2]
    assert attrs(dead)[ATTEMPT] == 3  # retry_attempts=2: the third delivery is the last
    for span in [*retries, dead]:
        assert span.kind is SpanKind.CLIENT
        assert attrs(span)[SYSTEM] == "redis"
        assert attrs(span)[DESTINATION] == "alpha:a1"
        assert attrs(span)[MESSAGE_ID] == message.message_id
        assert attrs(span)[OPERATION_TYPE] == "settle"
        assert attrs(span)["tta.failure.type"] == "transient"
        assert attrs(span)["tta.error"] == "RuntimeError: model overloaded"
        assert attrs(span)["tta.settled"] is True
    assert [attrs(s)[OPERATION_NAME] for s in [*retries, dead]] == [
        "retry",
        "retry",
        "dead_letter",
    ]
    processes = sorted(finished(exporter, "process alpha:a1"), key=lambda s: attrs(s)[ATTEMPT])
    assert len(processes) == 3
    for process, settle in zip(processes, [*retries, dead], strict=True):
        # Every delivery of the message descends from its one send.
        assert is_child(process, send)
        assert is_child(settle, process)
        assert process.status.status_code is StatusCode.ERROR
        assert attrs(process)["error.type"] == "RuntimeError"
        assert [e.name for e in process.events] == ["exception"]
    assert [attrs(p)["tta.failure.final"] for p in processes] == [False, False, True]


async def test_a_permanent_failure_is_dead_lettered_at_once(
    traced: RedisMessageCoordinator,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker(ALPHA, coordinator=traced, registry=None, tracer_provider=provider)

    @worker.on_event()
    async def refuse(ctx: MessageContext[Any]) -> None:
        raise PermanentError("bad input")

    await worker.start()
    await traced.send_message(CLIENT, ALPHA, event(CLIENT, ALPHA))
    await eventually(lambda: len(finished(exporter, "dead_letter alpha:a1")) == 1)
    dead = one(exporter, "dead_letter alpha:a1")
    assert attrs(dead)[ATTEMPT] == 1
    assert attrs(dead)["tta.failure.type"] == FailureType.PERMANENT.value
    assert finished(exporter, "retry alpha:a1") == []


async def test_an_error_reply_and_a_timeout_fail_the_request_span(
    traced: RedisMessageCoordinator,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    make_worker: WorkerFactory,
) -> None:
    calc = make_worker(CALC, coordinator=traced, registry=None, tracer_provider=provider)

    @calc.on_request()
    async def refuse(ctx: MessageContext[Any]) -> None:
        raise PermanentError("division by zero")

    await calc.start()
    with pytest.raises(RemoteHandlerError):
        await traced.request(CLIENT, CALC, {"a": 1}, timeout=10)
    request = one(exporter, "request calc:k1")
    assert request.status.status_code is StatusCode.ERROR
    assert attrs(request)["tta.reply.status"] == "error"
    assert attrs(request)["error.type"] == "remote_handler_error"
    await eventually(lambda: len(finished(exporter, "reply client:c1")) == 1)
    assert attrs(one(exporter, "reply client:c1"))["tta.reply.status"] == "error"

    nobody = AgentId("nobody", "n1")
    with pytest.raises(RequestTimeoutError):
        await traced.request(CLIENT, nobody, {}, timeout=0.3)
    timed_out = one(exporter, "request nobody:n1")
    assert timed_out.status.status_code is StatusCode.ERROR
    assert attrs(timed_out)["error.type"] == "TimeoutError"
    assert is_child(one(exporter, "send nobody:n1"), timed_out)


async def test_a_batch_has_a_creation_span_per_message_and_one_send_span(
    traced: RedisMessageCoordinator, exporter: InMemorySpanExporter
) -> None:
    messages = [event(CLIENT, ALPHA, n=1), event(CLIENT, BETA, n=2), event(CLIENT, BETA, n=3)]
    results = await traced.send_many(messages)
    assert all(r.delivered for r in results)
    assert all(not m.headers for m in messages)

    send = one(exporter, "send")
    creates = finished(exporter, "create alpha:a1") + finished(exporter, "create beta:b1")
    assert len(creates) == 3
    assert send.kind is SpanKind.CLIENT
    assert attrs(send)["messaging.batch.message_count"] == 3
    assert attrs(send)["tta.send.delivered"] == 3
    assert DESTINATION not in attrs(send)  # two queues
    assert sorted(link.context.span_id for link in send.links) == sorted(map(span_id, creates))
    for create in creates:
        assert create.kind is SpanKind.PRODUCER
        assert attrs(create)[OPERATION_TYPE] == "create"
    by_message = {attrs(c)[MESSAGE_ID]: span_id(c) for c in creates}
    for agent in (ALPHA, BETA, BETA):
        received = await traced.receive(agent)
        assert received is not None
        assert traceparent_span_id(received.message) == by_message[received.message.message_id]


async def test_published_events_carry_their_creation_context(
    traced: RedisMessageCoordinator, exporter: InMemorySpanExporter
) -> None:
    await traced.subscribe(ALPHA, [MessageType.EVENT])
    await traced.subscribe(BETA, [MessageType.EVENT])
    results = await traced.publish_event(CLIENT, event(CLIENT, CLIENT, news=1))
    assert len(results) == 2
    for agent in (ALPHA, BETA):
        create = one(exporter, f"create {agent}")
        received = await traced.receive(agent)
        assert received is not None
        assert traceparent_span_id(received.message) == span_id(create)


async def test_a_refused_send_fails_its_span(
    coordination_redis: Any, key_prefix: str, provider: TracerProvider, exporter: Any
) -> None:
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, queue_size=1, tracer_provider=provider
    )
    try:
        assert (await coord.send_message(CLIENT, ALPHA, event(CLIENT, ALPHA))).delivered
        refused = await coord.send_message(CLIENT, ALPHA, event(CLIENT, ALPHA))
        assert not refused.delivered
        ok, failed = finished(exporter, "send alpha:a1")
        assert ok.status.status_code is StatusCode.UNSET
        assert failed.status.status_code is StatusCode.ERROR
        assert attrs(failed)["tta.send.status"] == "refused"
        assert attrs(failed)["error.type"] == "refused"
        assert "queue full" in (failed.status.description or "")

        results = await coord.send_many([event(CLIENT, ALPHA), event(CLIENT, BETA)])
        assert [r.delivered for r in results] == [False, True]
        batch = one(exporter, "send")
        assert attrs(batch)["tta.send.delivered"] == 1
        assert batch.status.status_code is StatusCode.ERROR
        assert (batch.status.description or "").startswith("1 of 2 not delivered")
    finally:
        await coord.aclose()


async def test_an_invalid_message_fails_its_send_span(
    traced: RedisMessageCoordinator, exporter: InMemorySpanExporter
) -> None:
    from tta_agent_coordination.errors import PayloadTooLargeError

    await traced.configure(max_payload_bytes=1024)
    with pytest.raises(PayloadTooLargeError):
        await traced.send_message(CLIENT, ALPHA, event(CLIENT, ALPHA, text="x" * 2000))
    span = one(exporter, "send alpha:a1")
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "PayloadTooLargeError"
