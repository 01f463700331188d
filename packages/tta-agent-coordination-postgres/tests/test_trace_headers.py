"""The store keeps a message's trace context: a message restored after a Redis loss still
descends from the span that sent it (its ``traceparent`` header is in the envelope)."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tta_agent_coordination import AgentId, AgentMessage, MessageType, RedisMessageCoordinator
from tta_agent_coordination.testing.backends import delete_prefix

A = AgentId("planner", "p1")
B = AgentId("writer", "w1")


async def test_a_restored_message_keeps_its_trace_context(coordination_redis, key_prefix, store):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    c = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, store=store, tracer_provider=provider
    )
    try:
        message = AgentMessage(
            sender=A, recipient=B, message_type=MessageType.EVENT, headers={"x-app": "1"}
        )
        assert (await c.send_message(A, B, message)).delivered
        await c.flush_store()
        [send] = exporter.get_finished_spans()
        assert send.context is not None
        [record] = await store.get(message.message_id)
        assert record.message is not None
        stored = record.message.headers["traceparent"]
        assert int(stored.split("-")[2], 16) == send.context.span_id

        await delete_prefix(coordination_redis, key_prefix)  # Redis loses the message
        assert await store.restore(c) == 1
        received = await c.receive(B)
        assert received is not None
        traceparent = received.message.headers["traceparent"]
        assert int(traceparent.split("-")[2], 16) == send.context.span_id
        assert received.message.headers["x-app"] == "1"
    finally:
        await c.aclose()
        provider.shutdown()
