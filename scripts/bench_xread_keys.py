"""What one blocked ``XREAD`` over many streams costs, by key count (issue 14 §3).

Not a test: a measurement against a real Redis, behind ``StreamWaiter``'s default
``max_keys_per_read`` (how many streams one shared read covers before another reader,
with its own connection, is opened). For each key count N it creates N streams of one
entry each and measures, over ``--rounds`` rounds on one connection:

* **arm**: a read over the N streams from their last ids, ``BLOCK`` long, issued and
  ended at once by ``CLIENT UNBLOCK`` from a second connection: what a re-arm (a waiter
  joining with a stream the read does not cover) costs, round trip included;
* **wake**: the time from an ``XADD`` to one of the N streams to the blocked read's
  reply (the latency a waiter sees), and the Redis CPU per wake cycle (block, wake,
  read again) from ``INFO cpu``;
* **idle**: Redis CPU while one read over the N streams stays blocked for a second
  (what idle waiters cost the server).

Run it with::

    uv run python scripts/bench_xread_keys.py            # 1 ... 16,384 keys, prints a table
    uv run python scripts/bench_xread_keys.py --quick    # fewer rounds

The Redis URL comes from ``--redis-url``, else ``TTA_COORD_BENCH_REDIS_URL``, else
``redis://127.0.0.1:6379/14``. Every key lives under a unique ``bxread-<hex>`` prefix
and is deleted at the end. The numbers are in ``docs/worker.md`` ("Waiting for
messages").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

DEFAULT_URL = "redis://127.0.0.1:6379/14"
URL_ENV = "TTA_COORD_BENCH_REDIS_URL"
KEY_COUNTS = (1, 1_024, 4_096, 8_192, 16_384)


@dataclass
class Row:
    """The measurements of one key count (times in ms, CPU in ms of Redis CPU time)."""

    keys: int
    arm_p50: float
    arm_p95: float
    wake_p50: float
    wake_p95: float
    cpu_per_wake: float
    idle_cpu_share: float


async def _redis_cpu_s(client: Any) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(url: str, prefix: str, n: int, rounds: int) -> Row:
    reader = aioredis.from_url(url)
    other = aioredis.from_url(url)
    keys = [f"{prefix}:{{s}}:{i}" for i in range(n)]
    try:
        pipe = other.pipeline(transaction=False)
        for key in keys:
            pipe.xadd(key, {"f": "v"}, maxlen=1)
        ids = [_text(i) for i in await pipe.execute()]
        streams: dict[Any, Any] = dict(zip(keys, ids, strict=True))
        reader_id = int(await reader.client_id())

        async def kick_when_blocked() -> None:
            while True:
                if await other.client_unblock(reader_id):
                    return
                await asyncio.sleep(0.0005)

        arm: list[float] = []
        for _ in range(rounds):
            started = time.perf_counter()
            kick = asyncio.ensure_future(kick_when_blocked())
            await reader.xread(streams, block=60_000)
            arm.append((time.perf_counter() - started) * 1000)
            await kick

        wake: list[float] = []
        cpu_before = await _redis_cpu_s(other)
        target = keys[n // 2]
        for _ in range(rounds):
            read = asyncio.ensure_future(reader.xread(streams, block=60_000))
            # Wait until the read is blocked on the server (it then shows in CLIENT LIST
            # with cmd=xread), so the XADD is what ends it.
            while True:
                blocked = await other.execute_command("CLIENT", "LIST", "ID", reader_id)
                if b"cmd=xread" in blocked and b"flags=b" in blocked:
                    break
                await asyncio.sleep(0.0005)
            started = time.perf_counter()
            new_id = _text(await other.xadd(target, {"f": "v"}, maxlen=1))
            reply = await read
            wake.append((time.perf_counter() - started) * 1000)
            assert reply, "the read ended without the new entry"
            streams[target] = new_id
        # Counts the CLIENT LIST polls too: an upper bound of a wake cycle's cost.
        cpu_per_wake = (await _redis_cpu_s(other) - cpu_before) * 1000 / rounds

        read = asyncio.ensure_future(reader.xread(streams, block=60_000))
        await asyncio.sleep(0.2)
        cpu_before, wall = await _redis_cpu_s(other), time.monotonic()
        await asyncio.sleep(1.0)
        idle = (await _redis_cpu_s(other) - cpu_before) / (time.monotonic() - wall)
        await other.client_unblock(reader_id)
        await read
        return Row(
            n,
            statistics.median(arm),
            _pct(arm, 0.95),
            statistics.median(wake),
            _pct(wake, 0.95),
            cpu_per_wake,
            idle,
        )
    finally:
        for start in range(0, n, 1_000):
            await other.delete(*keys[start : start + 1_000])
        await reader.aclose()
        await other.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get(URL_ENV, DEFAULT_URL))
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="30 rounds per key count")
    args = parser.parse_args()
    rounds = 30 if args.quick else args.rounds
    prefix = f"bxread-{uuid.uuid4().hex[:8]}"
    print(
        "| streams in the read | arm (re-arm) p50 / p95 | XADD → reply p50 / p95 "
        "| Redis CPU per wake cycle | Redis CPU, blocked idle |"
    )
    print("|---:|---:|---:|---:|---:|")
    for n in KEY_COUNTS:
        row = await _measure(args.redis_url, prefix, n, rounds)
        print(
            f"| {row.keys:,} | {row.arm_p50:.2f} / {row.arm_p95:.2f} ms "
            f"| {row.wake_p50:.2f} / {row.wake_p95:.2f} ms | {row.cpu_per_wake:.2f} ms "
            f"| {row.idle_cpu_share:.1%} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
