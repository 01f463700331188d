"""Is the agent registry a hot spot? What one heartbeat costs the Redis node that holds it.

Not a test: a benchmark against a real Redis (issue 19). The registry keeps every agent
of a prefix under one hash tag, so on a Cluster all of its load lands on one node. This
script registers ``--agents`` agents, then runs ``--beats`` heartbeats (spread over the
agents, ``--concurrency`` at a time) and reads the server's own accounting
(``INFO commandstats``: calls and microseconds of ``EVALSHA``) to get:

* the Redis CPU time of one heartbeat (the script, on the server);
* the heartbeat round trip seen by the client (p50/p99);
* how many agents one Redis core sustains at the default heartbeat interval (10 s:
  ``heartbeat_ttl_s`` 30 s / 3), i.e. where the single-slot design would stop scaling.

Run it with::

    uv run python scripts/bench_registry.py            # writes docs/scaling.md's block
    uv run python scripts/bench_registry.py --quick    # prints only

The Redis URL comes from ``--redis-url``, else ``TTA_COORD_BENCH_REDIS_URL``, else
``redis://127.0.0.1:6379/14``; keys live under a unique ``breg-<hex>`` prefix, deleted at
the end. Other clients of the same server add to ``EVALSHA``'s counters: run it on a quiet
server (the script says how many other calls it saw).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog

from doc_block import replace_block
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.testing import delete_prefix

DEFAULT_URL = "redis://127.0.0.1:6379/14"
URL_ENV = "TTA_COORD_BENCH_REDIS_URL"
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "scaling.md"
START = "<!-- bench_registry:start -->"
END = "<!-- bench_registry:end -->"
DEFAULT_INTERVAL_S = 10.0


@dataclass
class Agent:
    """The least a registration needs: an id and a name."""

    agent_id: AgentId
    name: str


@dataclass
class Result:
    agents: int
    beats: int
    server_us_per_beat: float
    round_trip_p50_ms: float
    round_trip_p99_ms: float
    other_calls: int

    @property
    def agents_per_core(self) -> int:
        """Agents beating every 10 s that would fill one Redis core with heartbeats."""
        return int(DEFAULT_INTERVAL_S * 1_000_000 / self.server_us_per_beat)


async def _evalsha_stats(client: Any) -> tuple[int, int]:
    stats = await client.info("commandstats")
    entry = stats.get("cmdstat_evalsha", {})
    return int(entry.get("calls", 0)), int(entry.get("usec", 0))


async def measure(url: str, agents: int, beats: int, concurrency: int) -> Result:
    client = aioredis.Redis.from_url(url, max_connections=concurrency + 8)
    prefix = f"breg-{uuid.uuid4().hex[:8]}"
    registry = RedisAgentRegistry(client, key_prefix=prefix)
    ids = [AgentId("bench", f"a{i}") for i in range(agents)]
    try:
        for start in range(0, agents, concurrency):
            await asyncio.gather(
                *(registry.register(Agent(a, str(a))) for a in ids[start : start + concurrency])
            )
        await registry.stop_heartbeats()  # only the beats below, none of the task's
        calls0, usec0 = await _evalsha_stats(client)
        times: list[float] = []
        queue = iter(range(beats))

        async def beat_loop() -> None:
            for n in queue:
                started = time.perf_counter()
                await registry.heartbeat(ids[n % agents])
                times.append(time.perf_counter() - started)

        await asyncio.gather(*(beat_loop() for _ in range(concurrency)))
        calls1, usec1 = await _evalsha_stats(client)
        calls = calls1 - calls0
        times.sort()
        return Result(
            agents=agents,
            beats=beats,
            server_us_per_beat=(usec1 - usec0) / max(1, calls),
            round_trip_p50_ms=statistics.median(times) * 1000,
            round_trip_p99_ms=times[int(len(times) * 0.99) - 1] * 1000,
            other_calls=calls - beats,
        )
    finally:
        await registry.aclose()
        await delete_prefix(client, prefix)
        await client.aclose()


def render(result: Result, url: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    return "\n".join(
        [
            START,
            f"Measured {when} by `scripts/bench_registry.py` ({platform.machine()}, "
            f"{os.cpu_count()} cores, Redis at `{url}`; {result.agents:,} registered agents, "
            f"{result.beats:,} heartbeats):",
            "",
            "| Redis CPU per heartbeat | round trip p50 | p99 | agents per Redis core "
            "at one beat / 10 s |",
            "|---:|---:|---:|---:|",
            f"| {result.server_us_per_beat:.1f} µs | {result.round_trip_p50_ms:.2f} ms "
            f"| {result.round_trip_p99_ms:.2f} ms | {result.agents_per_core:,} |",
            "",
            f"({result.other_calls:,} other `EVALSHA` calls ran on the server meanwhile and "
            "are counted in the CPU figure.)",
            END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get(URL_ENV, DEFAULT_URL))
    parser.add_argument("--agents", type=int, default=2_000)
    parser.add_argument("--beats", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="200 agents, 2,000 beats, print")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.quick:
        args.agents, args.beats = 200, 2_000
    result = asyncio.run(measure(args.redis_url, args.agents, args.beats, args.concurrency))
    block = render(result, args.redis_url)
    print(block)
    if not args.quick:
        replace_block(DOC_PATH, START, END, block, missing="## Is the registry a hot spot?\n\n")


if __name__ == "__main__":
    main()
