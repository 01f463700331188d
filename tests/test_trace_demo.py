"""``scripts/trace_demo.py``: the demo's traces as trees (docs/observability.md, "Tracing")."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "trace_demo.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("trace_demo", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_render_draws_each_trace_as_a_tree() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("request calc", kind=SpanKind.CLIENT),
        tracer.start_as_current_span("send calc", kind=SpanKind.PRODUCER),
        tracer.start_as_current_span(
            "process calc",
            kind=SpanKind.CONSUMER,
            attributes={"messaging.redis.message.delivery_attempt": 2},
        ),
    ):
        with tracer.start_as_current_span("reply client"):
            pass
        with tracer.start_as_current_span("ack calc"):
            pass
    with tracer.start_as_current_span("receive calc"):  # a read: hidden by default
        pass
    spans = list(exporter.get_finished_spans())
    lines = load_script().render(spans)
    names = [line.split("  [")[0] for line in lines if line]
    assert names == [
        "request calc",
        "└─ send calc",
        "   └─ process calc",
        "      ├─ reply client",
        "      └─ ack calc",
    ]
    assert "attempt=2" in lines[2]
    assert "[CONSUMER]" in lines[2]
    assert any(
        line.startswith("receive calc") for line in load_script().render(spans, receive=True)
    )


def test_the_docs_hold_the_demo_traces() -> None:
    text = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")
    block = text.split("<!-- trace-demo:start -->")[1].split("<!-- trace-demo:end -->")[0]
    for name in ("request world_builder", "process world_builder", "retry world_builder"):
        assert name in block
    assert "dead_letter world_builder:w2" in block


@pytest.mark.slow
def test_the_script_runs_the_demo_and_prints_its_traces() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=240, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    for expected in (
        "request world_builder  [CLIENT]",
        "└─ send world_builder  [PRODUCER]",
        "process world_builder  [CONSUMER]",
        "process narrative_generator:n1  [CONSUMER]",
        "reply input_processor:ip1  [PRODUCER]",
        "retry world_builder  [CLIENT]",
        "dead_letter world_builder:w2  [CLIENT]",
    ):
        assert expected in text, expected
