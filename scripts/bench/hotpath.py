"""Hot-path profile (issue 20): one send and one delivery, ours against the raw floor.

Five cases, each run twice on the real Redis: once timed without the profiler (the wall
time per operation) and once under ``cProfile`` (where that time goes):

- ``ours: send_message``: ``RedisMessageCoordinator.send_message`` of one ~100-byte
  payload, one at a time (the benchmark's producer, ``systems/ours.py``);
- ``ours: delivery``: an ``AgentWorker`` at its defaults, in this process, takes N queued
  messages through receive -> handler -> ack (from ``start()`` until the N-th handler ran
  and ``stop()`` flushed the acks);
- ``raw: XADD``: one ``XADD`` with ``json.dumps`` per message (``systems/raw.py``);
- ``raw: XADD, asyncio``: the same on ``redis.asyncio`` (``systems/raw_async.py``): what
  the asyncio client costs before any library code runs;
- ``raw: delivery``: ``XREADGROUP COUNT 1`` -> ``json.loads`` -> handler -> ``XACK`` +
  ``XDEL`` pipelined, one message at a time.

Run it as ``scripts/bench/run --profile`` (writes the ``bench_profile`` block of
docs/benchmarks.md and ``results/profile.json``) or ``... --profile --quick`` (prints).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import pstats
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from common import make_payload
from profile_report import Summary, render, rows_from_stats, summarise
from runner import clean

HERE = Path(__file__).resolve().parent
START = "<!-- bench_profile:start -->"
END = "<!-- bench_profile:end -->"
WARMUP = 200


async def _measure(
    run: Callable[[bool], Awaitable[tuple[float, cProfile.Profile | None]]], case: str, n: int
) -> Summary:
    wall, _ = await run(False)
    _, prof = await run(True)
    assert prof is not None
    return summarise(case, rows_from_stats(pstats.Stats(prof).stats), n, wall)  # pyright: ignore[reportAttributeAccessIssue]


class _Timed:
    """The wall time of a ``with`` block and, when ``profile``, its cProfile."""

    def __init__(self, profile: bool) -> None:
        self.prof = cProfile.Profile() if profile else None
        self.wall = 0.0

    def __enter__(self) -> _Timed:
        self._t0 = time.perf_counter()
        if self.prof is not None:
            self.prof.enable()
        return self

    def __exit__(self, *_: object) -> None:
        if self.prof is not None:
            self.prof.disable()
        self.wall = time.perf_counter() - self._t0

    @property
    def result(self) -> tuple[float, cProfile.Profile | None]:
        return self.wall, self.prof


async def _async_sends(
    send: Callable[[dict[str, Any]], Awaitable[None]],
    r: redis.Redis,
    patterns: list[str],
    n: int,
    profile: bool,
) -> tuple[float, cProfile.Profile | None]:
    """Warm up, clear the namespace, then time ``n`` sends one at a time."""
    for _ in range(WARMUP):
        await send(make_payload(-1))
    clean(r, patterns)
    with _Timed(profile) as timed:
        for _ in range(n):
            await send(make_payload(-1))
    return timed.result


async def ours_send(url: str, n: int) -> Summary:
    from systems import ours

    async def run(profile: bool) -> tuple[float, cProfile.Profile | None]:
        producer = ours.Producer(url)
        await producer.start()
        r = redis.Redis.from_url(url)
        try:
            return await _async_sends(producer.send, r, ours.PATTERNS, n, profile)
        finally:
            await producer.close()
            clean(r, ours.PATTERNS)
            r.close()

    return await _measure(run, "ours: send_message", n)


async def ours_delivery(url: str, n: int) -> Summary:
    import redis.asyncio as aioredis
    from systems import ours

    from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
    from tta_agent_coordination.runtime.worker import AgentWorker

    async def run(profile: bool) -> tuple[float, cProfile.Profile | None]:
        producer = ours.Producer(url)
        await producer.start()
        r = redis.Redis.from_url(url)
        client = aioredis.Redis.from_url(url)
        coord = RedisMessageCoordinator(client, ours.PREFIX, queue_size=ours.QUEUE_SIZE)
        try:
            clean(r, ours.PATTERNS)
            for start in range(0, n, 100):
                await producer.send_batch([make_payload(-1) for _ in range(min(100, n - start))])
            worker = AgentWorker(coord, None, ours.recipients(1)[0])
            done = 0
            finished = asyncio.Event()

            @worker.on_event()
            async def handle(ctx: Any) -> None:  # pyright: ignore[reportUnusedFunction]
                nonlocal done
                _ = ctx.message.payload["s"]
                done += 1
                if done == n:
                    finished.set()

            with _Timed(profile) as timed:
                await worker.start()
                await asyncio.wait_for(finished.wait(), timeout=max(60.0, n / 50))
                await worker.stop(grace_period=5)
            return timed.result
        finally:
            await producer.close()
            await coord.aclose()
            await client.aclose()
            clean(r, ours.PATTERNS)
            r.close()

    return await _measure(run, "ours: delivery (AgentWorker defaults)", n)


async def raw_send(url: str, n: int) -> Summary:
    from systems import raw

    async def run(profile: bool) -> tuple[float, cProfile.Profile | None]:
        r = redis.Redis.from_url(url)
        try:
            # The sync client's loop stays sync: an await per send would be the floor's cost.
            for _ in range(WARMUP):
                r.xadd(raw.KEY, {"d": json.dumps(make_payload(-1))})
            clean(r, raw.PATTERNS)
            with _Timed(profile) as timed:
                for _ in range(n):
                    r.xadd(raw.KEY, {"d": json.dumps(make_payload(-1))})
            return timed.result
        finally:
            clean(r, raw.PATTERNS)
            r.close()

    return await _measure(run, "raw: XADD one at a time", n)


async def raw_async_send(url: str, n: int) -> Summary:
    from systems import raw, raw_async

    async def run(profile: bool) -> tuple[float, cProfile.Profile | None]:
        producer = raw_async.Producer(url)
        r = redis.Redis.from_url(url)
        try:
            return await _async_sends(producer.send, r, raw.PATTERNS, n, profile)
        finally:
            await producer.close()
            clean(r, raw.PATTERNS)
            r.close()

    return await _measure(run, "raw: XADD one at a time, asyncio client", n)


async def raw_delivery(url: str, n: int) -> Summary:
    from systems import raw

    async def run(profile: bool) -> tuple[float, cProfile.Profile | None]:
        r = redis.Redis.from_url(url)
        try:
            clean(r, raw.PATTERNS)
            r.xgroup_create(raw.KEY, raw.GROUP, "0", mkstream=True)
            pipe = r.pipeline(transaction=False)
            for _ in range(n):
                pipe.xadd(raw.KEY, {"d": json.dumps(make_payload(-1))})
            pipe.execute()
            seen: list[int] = []

            def handle(payload: Any) -> None:
                seen.append(payload["s"])

            with _Timed(profile) as timed:
                handled = raw.consume(r, 1, handle, limit=n)
            assert handled == n == len(seen)
            return timed.result
        finally:
            clean(r, raw.PATTERNS)
            r.close()

    return await _measure(run, "raw: delivery (XREADGROUP COUNT 1, XACK + XDEL)", n)


def write_doc(block: str, doc: Path) -> None:
    """Replace the ``bench_profile`` block of ``doc`` (append it when absent)."""
    text = doc.read_text()
    new = f"{START}\n{block}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + new + tail
    else:
        text = text.rstrip() + "\n\n" + new + "\n"
    doc.write_text(text)


async def profile_all(url: str, n: int) -> list[Summary]:
    """The five cases, one after the other."""
    return [
        await ours_send(url, n),
        await raw_send(url, n),
        await raw_async_send(url, n),
        await ours_delivery(url, n),
        await raw_delivery(url, n),
    ]


def main(url: str, n: int, *, write: bool, doc: Path, results: Path) -> None:
    """Profile, print the summary; with ``write``, update ``doc`` and ``results``."""
    summaries = asyncio.run(profile_all(url, n))
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    header = (
        f"Profiled: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `scripts/bench/run --profile`, "
        f"cProfile, N = {n:,} per case, load average (1/5/15 min) {load} at the end. "
        "µs/op (profiled) = own time under the profiler per operation (it inflates many small "
        "Python calls more than a syscall: compare shares, and the unprofiled wall time); "
        '"Redis round trips" is the time in socket syscalls and the event loop\'s poll.'
    )
    block = render(summaries, header)
    print(block)
    if write:
        write_doc(block, doc)
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps([asdict(s) for s in summaries], indent=1))
