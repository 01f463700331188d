"""OpenTelemetry tracing (``observability/tracing.py``) through real coordinators and workers.

Spans go to the SDK's in-memory exporter through a provider of each test's own (the
global provider is never set in this process). The chains are checked by parent span
ids: a handler's ``process`` span descends from the span that sent its message, across
workers and across a request and its reply, on FakeRedis and on the real Redis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
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
from tta_agent_coordination.models import FailureType, QueueMessage, ReceivedMessage
from tta_agent_coordination.observability.tracing import (
    ATTEMPT,
    CONVERSATION_ID,
    DESTINATION,
    MESSAGE_ID,
    OPERATION_NAME,
    OPERATION_TYPE,
    SYSTEM,
    Tracing,
    tracing_available,
)
from tta_agent_coordination.observability.tracing_scopes import otel_api
from tta_agent_coordination.replies import REPLY_INBOX_HEADER

from .conftest import WorkerFactory, eventually

CLIENT = AgentId("client", "c1")
ALPHA = AgentId("alpha", "a1")
BETA = AgentId("beta", "b1")
CALC = AgentId("calc", "k1")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()


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


def event(sender: AgentId, recipient: AgentId, **payload: Any) -> AgentMessage:
    return AgentMessage(
        sender=sender, recipient=recipient, message_type=MessageType.EVENT, payload=payload
    )


def finished(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def one(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    spans = finished(exporter, name)
    assert len(spans) == 1, [s.name for s in exporter.get_finished_spans()]
    return spans[0]


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.context is not None
    assert parent.context is not None
    return parent_id(child) == span_id(parent) and child.context.trace_id == parent.context.trace_id


def traceparent_span_id(message: AgentMessage) -> int:
    # W3C: version-traceid-spanid-flags.
    return int(message.headers["traceparent"].split("-")[2], 16)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


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


def received_message() -> ReceivedMessage:
    message = event(CLIENT, ALPHA)
    return ReceivedMessage(
        token="t-1", queue_message=QueueMessage(message=message, delivery_attempts=2)
    )


def test_a_settle_that_took_no_effect_is_an_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with Tracing(provider).settle("ack", received_message(), "alpha:a1") as scope:
        scope.done(False)
    span = one(exporter, "ack alpha:a1")
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["tta.settled"] is False
    assert attrs(span)[ATTEMPT] == 2


def test_a_cancelled_delivery_is_marked_and_ended(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    import asyncio

    scope = Tracing(provider).process(received_message(), "alpha:a1")
    with pytest.raises(asyncio.CancelledError), scope:
        raise asyncio.CancelledError
    span = one(exporter, "process alpha:a1")
    assert attrs(span)["tta.cancelled"] is True
    assert span.status.status_code is StatusCode.UNSET
    assert span.parent is None  # the message carried no context


def test_tracing_is_off_without_a_provider_and_with_a_no_op_one() -> None:
    assert tracing_available()
    # No test sets the global provider: it is still the API's proxy here.
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    tracing = Tracing()
    assert tracing.tracer() is None
    assert tracing.start_send([event(CLIENT, ALPHA)]) is None
    off = Tracing(trace.NoOpTracerProvider())
    assert off.tracer() is None
    # Every scope is a shared no-op.
    received = received_message()
    with off.process(received, "q") as process, off.settle("ack", received, "q") as settle:
        process.handler("h")
        process.failed(RuntimeError("x"), FailureType.TRANSIENT, final=False)
        settle.done(False)
    with off.request(received.message) as request:
        request.replied(received.message)
    reply = event(ALPHA, CLIENT)
    with off.reply(reply, None):
        pass
    assert reply.headers == {}
    off.received([received], 0)


async def test_untraced_messages_have_no_trace_headers(
    coordination_redis: Any, key_prefix: str
) -> None:
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    try:
        await coord.send_message(CLIENT, ALPHA, event(CLIENT, ALPHA))
        received = await coord.receive(ALPHA)
        assert received is not None
        assert received.message.headers == {}
    finally:
        await coord.aclose()


def run_python(code: str, env: dict[str, str] | None = None) -> Any:
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_global_provider_is_used_once_the_application_sets_it() -> None:
    code = """
import json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from tta_agent_coordination.observability.tracing import Tracing

tracing = Tracing()
before = tracing.tracer() is None
trace.set_tracer_provider(TracerProvider())
after = tracing.tracer() is not None
print(json.dumps([before, after, tracing.tracer() is tracing.tracer()]))
"""
    assert run_python(code) == [True, True, True]


def test_without_opentelemetry_a_worker_round_trip_works() -> None:
    # opentelemetry made unimportable, as when the ``otel`` extra is not installed.
    code = """
import asyncio, json, sys
sys.modules["opentelemetry"] = None
from tta_agent_coordination import AgentId, AgentWorker, RedisMessageCoordinator
from tta_agent_coordination.observability.tracing import Tracing, tracing_available
from tta_agent_coordination.testing.backends import fake_redis

async def main():
    coord = RedisMessageCoordinator(fake_redis(), key_prefix="t", tracer_provider=object())
    worker = AgentWorker(coord, None, AgentId("calc", "k1"), poll_interval=0.1)

    @worker.on_request()
    async def add(ctx):
        return {"sum": ctx.payload["a"] + ctx.payload["b"]}

    async with worker:
        reply = await coord.request(AgentId("client"), AgentId("calc", "k1"), {"a": 1, "b": 2})
    await coord.aclose()
    return [
        tracing_available(),
        Tracing().tracer() is None,
        reply.payload,
        sorted(reply.headers),
        any(m.startswith("opentelemetry.") for m in sys.modules),
    ]

print(json.dumps(asyncio.run(main())))
"""
    assert run_python(code) == [False, True, {"sum": 3}, ["tta-reply-status"], False]


def test_a_provider_named_in_the_environment_is_used() -> None:
    code = """
import json
from tta_agent_coordination.observability.tracing import Tracing
print(json.dumps(Tracing().tracer() is not None))
"""
    env = {**os.environ, "OTEL_PYTHON_TRACER_PROVIDER": "sdk_tracer_provider"}
    assert run_python(code, env) is True


def test_the_global_provider_is_found_without_the_apis_private_global(
    monkeypatch: pytest.MonkeyPatch, provider: TracerProvider
) -> None:
    # Should a release of the API rename the global it keeps the provider in, the
    # lookup falls back to get_tracer_provider(): slower, as correct.
    api = otel_api()
    assert api is not None
    assert api.global_provider() is None
    monkeypatch.setattr(api, "trace", SimpleNamespace(get_tracer_provider=lambda: provider))
    assert api.global_provider() is provider
    proxy = trace.ProxyTracerProvider()
    monkeypatch.setattr(api, "trace", SimpleNamespace(get_tracer_provider=lambda: proxy))
    assert api.global_provider() is None


_header_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda name: name not in ("traceparent", "tracestate", "baggage")
)


@settings(max_examples=50, deadline=None)
@given(
    headers=st.dictionaries(_header_names, st.text(max_size=20), max_size=5),
    count=st.integers(min_value=1, max_value=4),
)
def test_sent_copies_keep_every_header_and_add_their_own_context(
    headers: dict[str, str], count: int
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    messages = [
        AgentMessage(
            sender=CLIENT, recipient=ALPHA, message_type=MessageType.EVENT, headers=headers
        )
        for _ in range(count)
    ]
    trace_ = Tracing(provider).start_send(messages)
    assert trace_ is not None
    with trace_:
        pass
    copies = trace_.messages
    assert [m.message_id for m in copies] == [m.message_id for m in messages]
    assert all(m.headers == headers for m in messages)  # the originals are untouched
    contexts = set()
    for copy in copies:
        assert {k: v for k, v in copy.headers.items() if k != "traceparent"} == headers
        contexts.add(traceparent_span_id(copy))
    assert len(contexts) == count  # one creation context per message
    producers = {span_id(s) for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER}
    assert contexts == producers
    provider.shutdown()
