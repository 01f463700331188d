"""Run the demo's scenario with OpenTelemetry tracing on and print its traces as trees.

The SDK's in-memory exporter collects every span of one ``tta-coord demo`` run (the
coordinator and the workers use the global tracer provider this script sets), and each
trace is printed as a tree: the requester's ``request`` span, its ``send``, the
worker's ``process`` (a child of the send, across the queue), what the handler sent,
the ``reply`` and the ``ack``/``retry``/``dead_letter`` settlements::

    uv run python scripts/trace_demo.py                   # on FakeRedis
    uv run python scripts/trace_demo.py --redis-url redis://127.0.0.1:6379/15
    uv run python scripts/trace_demo.py --write-docs      # refresh docs/observability.md

Every request of the demo is a trace of its own. ``--write-docs`` puts three of them
(a command answered and narrated, the transient failure that is retried, the poison
command that is dead-lettered) between the ``trace-demo`` markers of
``docs/observability.md``.
The workers' ``receive`` spans (one per read, linked to the messages it reserved) are
roots of their own traces and left out unless ``--receive``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tta_agent_coordination.cli.demo.scenario import DemoSettings, run_demo
from tta_agent_coordination.testing.backends import delete_prefix, fake_redis, real_redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_block import replace_block

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "observability.md"
START = "<!-- trace-demo:start -->"
END = "<!-- trace-demo:end -->"

Trace = list[ReadableSpan]


def _named(trace_spans: Trace, prefix: str) -> bool:
    return any(s.name.startswith(prefix) for s in trace_spans)


DOC_TRACES: tuple[tuple[str, Callable[[Trace], bool]], ...] = (
    (
        "A command answered by any `world_builder`, whose event the narrator handles",
        lambda t: _named(t, "process narrative_generator") and not _named(t, "retry"),
    ),
    ("`open the gate`: fails transiently once, retried", lambda t: _named(t, "retry")),
    ("`summon a dragon`: poison, dead-lettered", lambda t: _named(t, "dead_letter")),
)
"""The traces that go in the docs: the first of the demo's traces each predicate takes."""

# Shown after a span's name, in this order, when set.
_SHOWN = (
    ("messaging.redis.message.delivery_attempt", "attempt"),
    ("tta.send.status", "status"),
    ("tta.failure.type", "failure"),
    ("tta.reply.status", "reply"),
    ("error.type", "error"),
    ("tta.cancelled", "cancelled"),
)


async def collect(redis_url: str | None) -> list[ReadableSpan]:
    """Run the demo once under the global tracer provider; its finished spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    client = fake_redis() if redis_url is None else await real_redis(redis_url)
    prefix = "trace-demo"
    try:
        # Without the TTA and plan scenes: the documented traces are those of the demo's own acts.
        settings = DemoSettings(pause_s=0, tta_scene=False, plan_scene=False, meeting_scene=False)
        result = await run_demo(client, prefix, settings=settings)
    finally:
        await delete_prefix(client, prefix)
        await client.aclose()
    if not result.ok:
        raise SystemExit("the demo failed: " + "; ".join(result.problems))
    provider.force_flush()
    return list(exporter.get_finished_spans())


def _label(span: ReadableSpan, start_ns: int) -> str:
    attributes = dict(span.attributes or {})
    kind = span.kind.name
    offset_ms = (span.start_time or 0) - start_ns
    duration_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    parts = [f"{span.name}  [{kind}]  +{offset_ms / 1e6:.1f} ms, {duration_ms:.1f} ms"]
    shown = [f"{short}={attributes[key]}" for key, short in _SHOWN if key in attributes]
    if shown:
        parts.append(" ".join(shown))
    return "  ".join(parts)


def _walk(
    span: ReadableSpan,
    children: dict[int | None, list[ReadableSpan]],
    start_ns: int,
    lines: list[str],
    prefix: str = "",
    last: bool = True,
    top: bool = True,
) -> None:
    """Append ``span`` and its descendants to ``lines`` as a tree."""
    branch = "" if top else ("└─ " if last else "├─ ")
    lines.append(prefix + branch + _label(span, start_ns))
    assert span.context is not None
    kids = sorted(children[span.context.span_id], key=lambda s: s.start_time or 0)
    deeper = prefix + ("" if top else ("   " if last else "│  "))
    for i, kid in enumerate(kids):
        _walk(kid, children, start_ns, lines, deeper, i == len(kids) - 1, False)


def render(spans: Sequence[ReadableSpan], *, receive: bool = False) -> list[str]:
    """Every trace in ``spans`` as text trees, oldest trace first."""
    by_trace: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        assert span.context is not None
        by_trace[span.context.trace_id].append(span)
    blocks: list[tuple[int, list[str]]] = []
    for members in by_trace.values():
        ids = {s.context.span_id for s in members if s.context is not None}
        children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
        for span in members:
            parent = span.parent.span_id if span.parent is not None else None
            children[parent if parent in ids else None].append(span)
        roots = sorted(children[None], key=lambda s: s.start_time or 0)
        if not receive and all(s.name.startswith("receive") for s in roots):
            continue
        start_ns = min(s.start_time or 0 for s in members)
        lines: list[str] = []
        for root in roots:
            _walk(root, children, start_ns, lines)
        blocks.append((start_ns, lines))
    out: list[str] = []
    for _, lines in sorted(blocks, key=lambda b: b[0]):
        out.extend([*lines, ""])
    return out


def first_trace(spans: Sequence[ReadableSpan], wanted: Callable[[Trace], bool]) -> Trace:
    """The oldest request trace that ``wanted`` takes."""
    by_trace: dict[int, Trace] = defaultdict(list)
    for span in spans:
        if span.context is not None:
            by_trace[span.context.trace_id].append(span)
    traces = sorted(by_trace.values(), key=lambda t: min(s.start_time or 0 for s in t))
    for candidate in traces:
        if _named(candidate, "request ") and wanted(candidate):
            return candidate
    raise SystemExit("the demo made no such trace")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", help="a real Redis (default: FakeRedis)")
    parser.add_argument("--receive", action="store_true", help="show the receive spans too")
    parser.add_argument(
        "--write-docs", action="store_true", help="write three traces into the docs"
    )
    args = parser.parse_args(argv)
    spans = asyncio.run(collect(args.redis_url))
    if not args.write_docs:
        print("\n".join(render(spans, receive=args.receive)))
        return 0
    sections: list[str] = []
    for title, wanted in DOC_TRACES:
        tree = "\n".join(render(first_trace(spans, wanted))).rstrip()
        sections.append(f"{title}:\n\n```text\n{tree}\n```\n")
    block = START + "\n" + "\n".join(sections) + END
    replace_block(DOC, START, END, block)
    print(f"wrote {len(DOC_TRACES)} traces to {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
