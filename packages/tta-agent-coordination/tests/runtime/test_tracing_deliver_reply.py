"""Tracing of ``coordinator.deliver_reply``: the public reply inbox other modules use.

A module (a conversation, a meeting) builds a reply itself and delivers it to a
coordinator's reply inbox; the delivery gets the same ``reply`` span as a worker's reply,
a child of the caller's current span, and the reply carries its context.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tta_agent_coordination import AgentMessage, MessageType, RedisMessageCoordinator
from tta_agent_coordination.errors import CoordinatorUnavailableError
from tta_agent_coordination.observability.tracing import (
    CONVERSATION_ID,
    DESTINATION,
    MESSAGE_ID,
    OPERATION_NAME,
    OPERATION_TYPE,
    SYSTEM,
)
from tta_agent_coordination.replies import ReplyAddress

from .tracing_support import (
    ALPHA,
    CLIENT,
    attrs,
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


def answer(correlation_id: str, **headers: str) -> AgentMessage:
    return AgentMessage(
        sender=ALPHA,
        recipient=CLIENT,
        message_type=MessageType.RESPONSE,
        payload={"text": "sunny"},
        correlation_id=correlation_id,
        headers=dict(headers),
    )


async def test_a_delivered_reply_has_a_reply_span_and_carries_its_context(
    coordination_redis: Any,
    key_prefix: str,
    traced_parts: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = traced_parts
    owner = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    replier = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, tracer_provider=provider
    )
    try:
        pending = owner.expect_reply("turn-1")
        reply = answer("turn-1", **{"x-app": "kept"})
        with provider.get_tracer("test").start_as_current_span("conversation turn") as turn:
            await replier.deliver_reply(owner.reply_inbox, reply)
        got = await pending.wait(5)

        span = one(exporter, "reply client:c1")
        root = one(exporter, "conversation turn")
        assert parent_id(span) == turn.get_span_context().span_id
        assert is_child(span, root)
        assert span.kind is SpanKind.PRODUCER
        assert span.status.status_code is StatusCode.UNSET
        assert traceparent_span_id(got) == span_id(span)
        assert got.headers["x-app"] == "kept"
        # The caller's message is not changed: the copy delivered carries the context.
        assert "traceparent" not in reply.headers
        assert attrs(span)[SYSTEM] == "redis"
        assert attrs(span)[DESTINATION] == "client:c1"
        assert attrs(span)[MESSAGE_ID] == reply.message_id
        assert attrs(span)[OPERATION_TYPE] == "send"
        assert attrs(span)[OPERATION_NAME] == "reply"
        assert attrs(span)[CONVERSATION_ID] == "turn-1"
        assert attrs(span)["tta.reply.inbox"] == owner.reply_inbox.inbox
    finally:
        await replier.aclose()
        await owner.aclose()


async def test_without_a_tracer_the_reply_is_delivered_as_given(
    coordination_redis: Any, key_prefix: str
) -> None:
    from opentelemetry.trace import NoOpTracerProvider

    owner = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    replier = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, tracer_provider=NoOpTracerProvider()
    )
    try:
        pending = owner.expect_reply("turn-2")
        await replier.deliver_reply(owner.reply_inbox, answer("turn-2"))
        got = await pending.wait(5)
        assert "traceparent" not in got.headers
        assert got.payload == {"text": "sunny"}
    finally:
        await replier.aclose()
        await owner.aclose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_failed_delivery_fails_its_reply_span(
    traced_parts: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = traced_parts
    # Nothing listens on this port: every Redis call is refused.
    dead = aioredis.Redis(port=_closed_port(), socket_connect_timeout=1)
    replier = RedisMessageCoordinator(
        dead,
        key_prefix="tta-test-dead",
        tracer_provider=provider,
        retry_attempts=1,
        backoff_base=0.01,
        backoff_factor=1.0,
        backoff_max=0.01,
    )
    try:
        with pytest.raises(CoordinatorUnavailableError):
            await replier.deliver_reply(ReplyAddress(inbox="nobody", ttl_ms=1000), answer("t3"))
        (span,) = finished(exporter, "reply client:c1")
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)["error.type"] == "CoordinatorUnavailableError"
    finally:
        await replier.aclose()
        await dead.aclose()
