"""Helpers of the tracing tests: messages, and finding spans and their parents."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tta_agent_coordination import AgentId, AgentMessage, MessageType

CLIENT = AgentId("client", "c1")
ALPHA = AgentId("alpha", "a1")
BETA = AgentId("beta", "b1")
CALC = AgentId("calc", "k1")


def in_memory_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    """An SDK provider that keeps every finished span in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


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
