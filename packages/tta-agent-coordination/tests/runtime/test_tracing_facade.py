"""The tracing facade (``observability/tracing.py``): scopes, tracing off, the API missing,
the global provider, and what a traced send does to messages."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tta_agent_coordination import AgentMessage, MessageType, RedisMessageCoordinator
from tta_agent_coordination.models import FailureType, QueueMessage, ReceivedMessage
from tta_agent_coordination.observability.tracing import ATTEMPT, Tracing, tracing_available
from tta_agent_coordination.observability.tracing_scopes import otel_api

from .tracing_support import (
    ALPHA,
    CLIENT,
    attrs,
    event,
    in_memory_provider,
    one,
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

    scope = Tracing(provider).process(received_message(), "alpha:a1")
    with pytest.raises(asyncio.CancelledError), scope:
        raise asyncio.CancelledError
    span = one(exporter, "process alpha:a1")
    assert attrs(span)["tta.cancelled"] is True
    assert span.status.status_code is StatusCode.UNSET
    assert span.parent is None  # the message carried no context


def test_a_cancelled_send_is_marked_and_ended_and_a_failed_one_is_an_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = Tracing(provider)
    cancelled = tracing.start_send([event(CLIENT, ALPHA)])
    assert cancelled is not None
    with pytest.raises(asyncio.CancelledError), cancelled:
        raise asyncio.CancelledError
    failed = tracing.start_send([event(CLIENT, ALPHA)])
    assert failed is not None
    with pytest.raises(ConnectionError), failed:
        raise ConnectionError("redis is down")
    first, second = exporter.get_finished_spans()
    assert attrs(first)["tta.cancelled"] is True
    assert first.status.status_code is StatusCode.UNSET
    assert second.status.status_code is StatusCode.ERROR
    assert attrs(second)["error.type"] == "ConnectionError"
    assert second.status.description == "redis is down"
    assert trace.get_current_span() is trace.INVALID_SPAN  # both detached their context


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
    same, scope = off.delivered_reply(reply, "inbox")
    assert same is reply  # off: nothing copied, nothing injected
    with scope:
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
    provider, exporter = in_memory_provider()
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
