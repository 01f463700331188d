"""send_and_wait round trips against a plain ``request()``, between two processes.

Not a test: a benchmark against a real Redis (issue 15). A server process runs the
answering side: ``AgentMessaging`` handlers for ``--pairs`` agents ``bench_b:b<i>`` that
return what they get, and an ``AgentWorker`` for ``bench_echo`` whose request handler
does the same. The measuring process then runs, for each kind:

* ``--turns`` sequential round trips (one pair): p50 / p99 latency;
* ``--pairs`` pairs talking at once, ``--turns`` round trips each: round trips per second.

Run it with::

    uv run python scripts/bench_conversations.py            # writes docs/benchmarks.md
    uv run python scripts/bench_conversations.py --quick    # fewer turns, prints only

The Redis URL comes from ``--redis-url``, else ``TTA_COORD_BENCH_REDIS_URL``, else
``redis://127.0.0.1:6379/14``. Every key lives under a unique ``bconv-<hex>`` prefix and
is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog

from doc_block import replace_block
from tta_agent_coordination.interactions import AgentMessaging, ConversationContext
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.runtime.context import MessageContext
from tta_agent_coordination.runtime.worker import AgentWorker

DEFAULT_URL = "redis://127.0.0.1:6379/14"
URL_ENV = "TTA_COORD_BENCH_REDIS_URL"
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
START = "<!-- bench_conversations:start -->"
END = "<!-- bench_conversations:end -->"
ECHO = AgentId("bench_echo", "e1")


def asker(i: int) -> AgentId:
    """The asking agent of pair ``i``."""
    return AgentId("bench_a", f"a{i}")


def answerer(i: int) -> AgentId:
    """The answering agent of pair ``i`` (served by the server process)."""
    return AgentId("bench_b", f"b{i}")


def _quiet() -> None:
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


async def serve(url: str, prefix: str, pairs: int) -> None:
    """The answering process: prints ``ready`` and serves until killed."""
    _quiet()
    client = aioredis.Redis.from_url(url)
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    messaging = AgentMessaging(coordinator, handler_concurrency=4)

    async def echo_turn(ctx: ConversationContext) -> Any:
        return ctx.payload

    for i in range(pairs):
        messaging.register_handler(answerer(i))(echo_turn)
    worker = AgentWorker(coordinator, None, ECHO, concurrency=max(8, pairs))

    @worker.on_request()
    async def echo(ctx: MessageContext[Any]) -> Any:
        return ctx.payload

    async with messaging, worker:
        print("ready", flush=True)
        await asyncio.Event().wait()


@dataclass
class Result:
    """One kind's numbers."""

    kind: str
    p50_ms: float
    p99_ms: float
    per_second: float


async def _measure(
    one: Callable[[int, int], Awaitable[Any]], turns: int, pairs: int, kind: str
) -> Result:
    latencies: list[float] = []
    for n in range(turns):
        started = time.perf_counter()
        await one(0, n)
        latencies.append((time.perf_counter() - started) * 1000)

    async def pair(i: int) -> None:
        for n in range(turns):
            await one(i, n)

    started = time.perf_counter()
    await asyncio.gather(*(pair(i) for i in range(pairs)))
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return Result(kind, statistics.median(latencies), cuts[98], pairs * turns / elapsed)


async def run(url: str, turns: int, pairs: int) -> list[Result]:
    """Start the server process, measure both kinds, clean up."""
    _quiet()
    prefix = f"bconv-{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(url)
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    messaging = AgentMessaging(coordinator)
    await messaging.register_organization("bench")
    for i in range(pairs):
        await messaging.register_agent(asker(i), organization="bench")
        await messaging.register_agent(answerer(i), organization="bench")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", "--redis-url", url, "--prefix", prefix,
        "--pairs", str(pairs), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while (line := await proc.stdout.readline()) and line.strip() != b"ready":
                pass
        sync = messaging.sync_conversation

        async def conversation_turn(i: int, n: int) -> Any:
            return await sync.send_and_wait(asker(i), answerer(i), {"n": n}, timeout=30)

        async def request_turn(i: int, n: int) -> Any:
            return await coordinator.request(asker(i), ECHO, {"n": n}, timeout=30)

        await _measure(conversation_turn, 20, 1, "warm-up")
        return [
            await _measure(request_turn, turns, pairs, "request()"),
            await _measure(conversation_turn, turns, pairs, "send_and_wait"),
        ]
    finally:
        proc.kill()
        await proc.wait()
        await coordinator.aclose()
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()


def render(results: list[Result], turns: int, pairs: int) -> str:
    """The docs block."""
    lines = [
        START,
        f"<!-- {datetime.now(UTC):%Y-%m-%d}, Python {platform.python_version()}, "
        f"{turns} turns, {pairs} pairs at once; two processes on one 2-core machine -->",
        "",
        "| kind | p50 (ms, one pair) | p99 (ms, one pair) | round trips/s "
        f"({pairs} pairs at once) |",
        "|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r.kind} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.per_second:,.0f} |")
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--serve``, the answering process)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default=os.environ.get(URL_ENV, DEFAULT_URL))
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="at most 100 turns, print only")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.redis_url, args.prefix, args.pairs))
        return 0
    turns = min(args.turns, 100) if args.quick else args.turns
    results = asyncio.run(run(args.redis_url, turns, args.pairs))
    block = render(results, turns, args.pairs)
    print(block)
    if not args.quick:
        replace_block(DOC_PATH, START, END, block, missing="## Conversations\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
