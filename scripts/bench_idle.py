"""What idle ``AgentWorker``s cost: 1,000 of them in one process, on one coordinator.

Not a test: a benchmark against a real Redis (issue 23 item 9). It starts ``--workers``
unregistered workers on empty queues, all sharing one coordinator and one client (whose
connections carry a client name of their own), lets them settle, then measures over
``--seconds``:

* the process CPU time (``time.process_time``) as a share of one core;
* the Redis server's CPU time (``INFO cpu``) as a share of one core;
* the connections the process has open (``CLIENT LIST`` filtered by the client name),
  and the connections in use at the end (the pool's in-use count);
* and, as a check that waiting still wakes at once, the p50/p95 time from a send to the
  handler on one of the workers.

Run it with::

    uv run python scripts/bench_idle.py                 # 1,000 workers, writes docs/benchmarks.md
    uv run python scripts/bench_idle.py --quick         # 200 workers, 3 s, prints only

The Redis URL comes from ``--redis-url``, else ``TTA_COORD_BENCH_REDIS_URL``, else
``redis://127.0.0.1:6379/14``. Every key lives under a unique ``bidle-<hex>`` prefix and is
deleted at the end.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog

from doc_block import replace_block
from tta_agent_coordination.models import AgentId, AgentMessage, MessageType
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.runtime.context import MessageContext
from tta_agent_coordination.runtime.worker import AgentWorker

DEFAULT_URL = "redis://127.0.0.1:6379/14"
URL_ENV = "TTA_COORD_BENCH_REDIS_URL"
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
START = "<!-- bench_idle:start -->"
END = "<!-- bench_idle:end -->"
SENDER = AgentId("bench_idle_sender")


@dataclass
class Result:
    """One measurement of ``workers`` idle workers over ``seconds``."""

    workers: int
    seconds: float
    poll_interval: float
    max_connections: int
    cpu_share: float
    redis_cpu_share: float
    open_connections: int
    in_use_connections: int
    latency_p50_ms: float
    latency_p95_ms: float


async def _client_connections(admin: aioredis.Redis, name: str) -> int:
    clients: list[dict[str, Any]] = await admin.client_list()  # pyright: ignore[reportUnknownMemberType]
    return sum(1 for c in clients if c.get("name") == name)


async def _redis_cpu(admin: aioredis.Redis) -> float:
    info: dict[str, Any] = await admin.info("cpu")  # pyright: ignore[reportUnknownMemberType]
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _in_use(client: aioredis.Redis) -> int:
    pool: Any = client.connection_pool
    return len(getattr(pool, "_in_use_connections", ()))


async def measure(
    url: str, workers: int, seconds: float, poll_interval: float, max_connections: int
) -> Result:
    """Start ``workers`` idle workers, measure them, stop them; the numbers.

    ``max_connections`` > 0 gives the client a ``BlockingConnectionPool`` of that size
    (callers queue for a connection); 0 an unbounded pool.
    """
    prefix = f"bidle-{uuid.uuid4().hex[:8]}"
    name = f"{prefix}-client"
    if max_connections > 0:
        pool = aioredis.BlockingConnectionPool.from_url(
            url, client_name=name, max_connections=max_connections, timeout=30
        )
        client = aioredis.Redis(connection_pool=pool)
    else:
        client = aioredis.Redis.from_url(url, client_name=name, max_connections=100_000)
    admin = aioredis.Redis.from_url(url)
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    handled: dict[str, asyncio.Future[float]] = {}

    async def handle(ctx: MessageContext) -> None:
        future = handled.get(ctx.message.message_id)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    agents = [
        AgentWorker(
            coordinator,
            None,
            AgentId("idle", f"w{i}"),
            poll_interval=poll_interval,
            maintenance_interval=3600,
        )
        for i in range(workers)
    ]
    for worker in agents:
        worker.add_handler(handle, MessageType.REQUEST)
    try:
        await asyncio.gather(*(w.start() for w in agents))
        await asyncio.sleep(max(3.0, 2 * poll_interval))  # settle: start-up bursts end
        cpu0, wall0, rcpu0 = time.process_time(), time.perf_counter(), await _redis_cpu(admin)
        await asyncio.sleep(seconds)
        cpu1, wall1, rcpu1 = time.process_time(), time.perf_counter(), await _redis_cpu(admin)
        open_connections = await _client_connections(admin, name)
        in_use = _in_use(client)
        latencies: list[float] = []
        target = agents[len(agents) // 2].agent_id
        for n in range(50):
            message = AgentMessage(
                message_id=f"latency-{n:04d}",
                sender=SENDER,
                recipient=target,
                message_type=MessageType.REQUEST,
                payload={"n": n},
            )
            done = handled[message.message_id] = asyncio.get_running_loop().create_future()
            sent = time.perf_counter()
            await coordinator.send_message(SENDER, target, message)
            latencies.append((await asyncio.wait_for(done, 10) - sent) * 1000)
            await asyncio.sleep(0.02)
        latencies.sort()
        return Result(
            workers=workers,
            seconds=seconds,
            poll_interval=poll_interval,
            max_connections=max_connections,
            cpu_share=(cpu1 - cpu0) / (wall1 - wall0),
            redis_cpu_share=(rcpu1 - rcpu0) / (wall1 - wall0),
            open_connections=open_connections,
            in_use_connections=in_use,
            latency_p50_ms=statistics.median(latencies),
            latency_p95_ms=latencies[int(len(latencies) * 0.95) - 1],
        )
    finally:
        for worker in agents:
            worker.request_stop("bench over")
        await asyncio.gather(*(w.stop() for w in agents), return_exceptions=True)
        await coordinator.aclose()
        keys = [k async for k in admin.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await admin.delete(*keys[i : i + 500])
        await client.aclose()
        await admin.aclose()


def _render(results: list[Result]) -> str:
    lines = [
        START,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {platform.system()} "
        f"({os.cpu_count()} cores), Python {platform.python_version()}, "
        "by `scripts/bench_idle.py` (unregistered workers on empty queues, one coordinator "
        "and one client).",
        "",
        "| workers | poll_interval | pool | process CPU (share of a core) | Redis CPU | "
        "connections open | in use | send → handler p50 / p95 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.workers:,} | {r.poll_interval:g} s | "
            f"{r.max_connections or 'unbounded'} | {r.cpu_share:.1%} | "
            f"{r.redis_cpu_share:.1%} | {r.open_connections} | {r.in_use_connections} | "
            f"{r.latency_p50_ms:.2f} / {r.latency_p95_ms:.2f} ms |"
        )
    lines += ["", END]
    return "\n".join(lines)


def _write_doc(block: str) -> None:
    replace_block(DOC_PATH, START, END, block, missing="## Idle workers\n\n")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table (and write it to docs/benchmarks.md)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default=os.environ.get(URL_ENV, DEFAULT_URL))
    parser.add_argument("--workers", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--poll-interval",
        type=float,
        action="append",
        help="worker poll_interval(s) to measure (repeatable; default 1, the default)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        action="append",
        help="pool sizes to measure (repeatable; 0 = unbounded; default 0 and 16)",
    )
    parser.add_argument("--quick", action="store_true", help="200 workers, 3 s, print only")
    parser.add_argument("--no-write", action="store_true", help="do not update the docs")
    args = parser.parse_args(argv)
    # A thousand workers log their start and stop: keep warnings and errors only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    workers, seconds = (200, 3.0) if args.quick else (args.workers, args.seconds)
    # An idle worker parks in one 30 s read whatever its poll_interval (up to 30 s), so
    # the default alone is measured unless asked.
    polls = args.poll_interval or [1.0]
    pools = args.max_connections or [0, 16]
    results = [
        asyncio.run(measure(args.redis_url, workers, seconds, p, m)) for m in pools for p in polls
    ]
    block = _render(results)
    print(block)
    if not (args.quick or args.no_write):
        _write_doc(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
