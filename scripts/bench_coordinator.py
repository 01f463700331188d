"""Throughput of ``RedisMessageCoordinator`` against raw redis-py floors (issue 2).

Not a test: a benchmark against a real Redis. For each operation it measures the
coordinator and the cheapest redis-py code that moves the same bytes (the "raw floor"),
three times, in the same run and on the same client, and reports messages/s, the ratio
ours/raw and PASS/MISS against the issue-2 target (ours >= 70% of the raw floor).

Run it with::

    uv run python scripts/bench_coordinator.py            # full run, writes docs/benchmarks.md
    uv run python scripts/bench_coordinator.py --quick    # smoke run, prints only
    uv run python scripts/bench_coordinator.py --profile receive   # cProfile one of ours

The Redis URL comes from ``--redis-url``, else ``TTA_COORD_BENCH_REDIS_URL``, else
``redis://127.0.0.1:6379/14``. Every key lives under a unique ``bcb-<hex>`` prefix and
is deleted after each measurement and, whatever happens, at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
from redis.utils import HIREDIS_AVAILABLE

from doc_block import replace_block
from tta_agent_coordination.models import AgentId, AgentMessage, MessagePriority, MessageType
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

DEFAULT_URL = "redis://127.0.0.1:6379/14"
URL_ENV = "TTA_COORD_BENCH_REDIS_URL"
REPO_ROOT = Path(__file__).resolve().parent.parent
DOC_PATH = REPO_ROOT / "docs" / "benchmarks.md"
START = "<!-- bench_coordinator:start -->"
END = "<!-- bench_coordinator:end -->"

TARGET = 0.70
BATCH = 100
PRELOAD_CHUNK = 500
GROUP = "workers"
CONSUMER = "bench"
SENDER = AgentId("bench_sender")
RECIPIENT = AgentId("bench_recipient", "r1")
# ~100 bytes of JSON payload: {"text": "<92 characters>"}
PAYLOAD: dict[str, Any] = {"text": "x" * 92}

T = TypeVar("T")
Timed = Callable[[str, int], Awaitable["Sample"]]


@dataclass
class Sample:
    """One timed run: wall seconds for ``n`` messages, server time spent meanwhile."""

    n: int
    seconds: float
    server_us: float
    client_cpu_s: float

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    @property
    def server_us_per_msg(self) -> float:
        return self.server_us / self.n

    @property
    def client_us_per_msg(self) -> float:
        return self.client_cpu_s * 1e6 / self.n


@dataclass
class Variant:
    """A measured implementation of one operation (ours or a raw floor)."""

    label: str
    run: Timed
    samples: list[Sample] = field(default_factory=list[Sample])

    def rates(self) -> list[float]:
        return [s.rate for s in self.samples]

    def median_rate(self) -> float:
        return statistics.median(self.rates())

    def median_server_us(self) -> float:
        return statistics.median(s.server_us_per_msg for s in self.samples)

    def median_client_us(self) -> float:
        return statistics.median(s.client_us_per_msg for s in self.samples)


@dataclass
class Operation:
    """One row group: ours against its floors; the first floor is the target's floor."""

    key: str
    title: str
    n: int
    ours: Variant
    floors: list[Variant]


# --- helpers ---------------------------------------------------------------------------


def make_messages(n: int) -> list[AgentMessage]:
    """``n`` distinct messages with the same ~100-byte payload (built outside the timing)."""
    return [
        AgentMessage(
            sender=SENDER,
            recipient=RECIPIENT,
            message_type=MessageType.EVENT,
            payload=PAYLOAD,
        )
        for _ in range(n)
    ]


def raw_entries(messages: Sequence[AgentMessage]) -> list[dict[str, str]]:
    """What the raw floor stores per message: the id and the same JSON envelope."""
    return [{"i": m.message_id, "m": m.stamped().model_dump_json()} for m in messages]


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


_SCRIPT_CMDS = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_evalsha_ro", "cmdstat_eval_ro")
_IGNORED_CMDS = ("cmdstat_info", "cmdstat_scan", "cmdstat_unlink", "cmdstat_xlen")


async def server_usec(client: aioredis.Redis) -> dict[str, float]:
    """``usec`` per command from INFO commandstats (server-wide)."""
    stats: dict[str, Any] = await client.info("commandstats")
    return {k: float(v["usec"]) for k, v in stats.items() if isinstance(v, dict)}


def server_delta(before: dict[str, float], after: dict[str, float], *, scripted: bool) -> float:
    """Server time between two snapshots, each command counted once.

    A command run by a Lua script is counted both in its own entry and in the script's:
    for ours (``scripted``) only script time counts, for a raw floor everything else.
    """
    delta = {k: v - before.get(k, 0.0) for k, v in after.items() if k not in _IGNORED_CMDS}
    return sum(v for k, v in delta.items() if (k in _SCRIPT_CMDS) == scripted)


async def delete_prefix(client: aioredis.Redis, prefix: str) -> int:
    """Delete every key under ``prefix`` (SCAN + UNLINK); how many were deleted."""
    deleted = 0
    batch: list[Any] = []
    async for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += int(await client.unlink(*batch))
            batch = []
    if batch:
        deleted += int(await client.unlink(*batch))
    return deleted


class Bench:
    """Every measured implementation, sharing one client."""

    def __init__(self, client: aioredis.Redis, run_prefix: str) -> None:
        self.client = client
        self.run_prefix = run_prefix
        self.profiler: cProfile.Profile | None = None

    # --- shared setup -----------------------------------------------------------------

    def coordinator(self, prefix: str) -> RedisMessageCoordinator:
        # queue_size raised so that 20 000 messages fit in one queue; all else default.
        return RedisMessageCoordinator(self.client, prefix, queue_size=1_000_000)

    async def _timed(
        self, n: int, body: Callable[[], Awaitable[None]], *, ours: bool = False
    ) -> Sample:
        gc.collect()
        before = await server_usec(self.client)
        if self.profiler is not None:
            self.profiler.enable()
        cpu = time.process_time()
        start = time.perf_counter()
        await body()
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
        if self.profiler is not None:
            self.profiler.disable()
        after = await server_usec(self.client)
        return Sample(
            n=n,
            seconds=seconds,
            server_us=server_delta(before, after, scripted=ours),
            client_cpu_s=cpu,
        )

    async def _raw_stream(self, prefix: str, n: int) -> str:
        """A stream with a consumer group holding ``n`` entries (for the receive floors)."""
        stream = f"{prefix}:{{raw}}:ready"
        await self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        for part in chunks(raw_entries(make_messages(n)), PRELOAD_CHUNK):
            async with self.client.pipeline(transaction=False) as pipe:
                for fields in part:
                    pipe.xadd(stream, fields)  # type: ignore[arg-type]
                await pipe.execute()
        return stream

    async def _loaded_coordinator(self, prefix: str, n: int) -> RedisMessageCoordinator:
        coord = self.coordinator(prefix)
        for part in chunks(make_messages(n), PRELOAD_CHUNK):
            results = await coord.send_many(part)
            if not all(r.delivered and not r.duplicate for r in results):
                raise RuntimeError("preload: a send was refused")
        return coord

    async def _check_len(self, stream: str, expected: int) -> None:
        length = int(await self.client.xlen(stream))
        if length != expected:
            raise RuntimeError(f"{stream}: {length} entries, expected {expected}")

    # --- 1. single sends --------------------------------------------------------------

    async def ours_send(self, prefix: str, n: int) -> Sample:
        coord = self.coordinator(prefix)
        messages = make_messages(n)
        results: list[Any] = []

        async def body() -> None:
            for m in messages:
                results.append(await coord.send_message(SENDER, RECIPIENT, m))

        sample = await self._timed(n, body, ours=True)
        if not all(r.delivered and not r.duplicate for r in results):
            raise RuntimeError("send_message: a send was refused")
        await self._check_len(coord.keys.queue(RECIPIENT).ready_for(MessagePriority.NORMAL), n)
        return sample

    async def raw_send(self, prefix: str, n: int) -> Sample:
        stream = f"{prefix}:{{raw}}:ready"
        entries = raw_entries(make_messages(n))
        client = self.client

        async def body() -> None:
            for fields in entries:
                await client.xadd(stream, fields)  # type: ignore[arg-type]

        sample = await self._timed(n, body)
        await self._check_len(stream, n)
        return sample

    # --- 2. batched sends -------------------------------------------------------------

    async def ours_send_many(self, prefix: str, n: int) -> Sample:
        coord = self.coordinator(prefix)
        batches = chunks(make_messages(n), BATCH)
        results: list[Any] = []

        async def body() -> None:
            for batch in batches:
                results.extend(await coord.send_many(batch))

        sample = await self._timed(n, body, ours=True)
        if len(results) != n or not all(r.delivered and not r.duplicate for r in results):
            raise RuntimeError("send_many: a send was refused")
        await self._check_len(coord.keys.queue(RECIPIENT).ready_for(MessagePriority.NORMAL), n)
        return sample

    async def raw_send_pipelined(self, prefix: str, n: int) -> Sample:
        stream = f"{prefix}:{{raw}}:ready"
        batches = chunks(raw_entries(make_messages(n)), BATCH)
        client = self.client

        async def body() -> None:
            for batch in batches:
                async with client.pipeline(transaction=False) as pipe:
                    for fields in batch:
                        pipe.xadd(stream, fields)  # type: ignore[arg-type]
                    await pipe.execute()

        sample = await self._timed(n, body)
        await self._check_len(stream, n)
        return sample

    # --- 3. receive + ack one at a time -----------------------------------------------

    async def ours_receive(self, prefix: str, n: int) -> Sample:
        coord = await self._loaded_coordinator(prefix, n)
        acked = 0

        async def body() -> None:
            nonlocal acked
            for _ in range(n):
                got = await coord.receive(RECIPIENT)
                if got is None:
                    raise RuntimeError("receive: queue empty too early")
                acked += await coord.ack(RECIPIENT, got.token)

        sample = await self._timed(n, body, ours=True)
        if acked != n:
            raise RuntimeError(f"ack: {acked} of {n} acked")
        await self._check_len(coord.keys.queue(RECIPIENT).ready_for(MessagePriority.NORMAL), 0)
        return sample

    async def raw_receive_xack(self, prefix: str, n: int) -> Sample:
        stream = await self._raw_stream(prefix, n)
        client = self.client

        async def body() -> None:
            for _ in range(n):
                reply: Any = await client.xreadgroup(GROUP, CONSUMER, {stream: ">"}, count=1)
                await client.xack(stream, GROUP, reply[0][1][0][0])

        sample = await self._timed(n, body)
        await self._check_len(stream, n)  # XACK alone leaves the entries in the stream
        return sample

    async def raw_receive_xack_xdel(self, prefix: str, n: int) -> Sample:
        stream = await self._raw_stream(prefix, n)
        client = self.client

        async def body() -> None:
            for _ in range(n):
                reply: Any = await client.xreadgroup(GROUP, CONSUMER, {stream: ">"}, count=1)
                entry_id = reply[0][1][0][0]
                async with client.pipeline(transaction=False) as pipe:
                    pipe.xack(stream, GROUP, entry_id)
                    pipe.xdel(stream, entry_id)
                    await pipe.execute()

        sample = await self._timed(n, body)
        await self._check_len(stream, 0)
        return sample

    # --- 4. receive_batch + ack_many --------------------------------------------------

    async def ours_receive_batch(self, prefix: str, n: int) -> Sample:
        coord = await self._loaded_coordinator(prefix, n)
        acked = 0

        async def body() -> None:
            nonlocal acked
            for _ in range(n // BATCH):
                got = await coord.receive_batch(RECIPIENT, BATCH)
                if len(got) != BATCH:
                    raise RuntimeError("receive_batch: short batch")
                acked += sum(await coord.ack_many(RECIPIENT, [g.token for g in got]))

        sample = await self._timed(n, body, ours=True)
        if acked != n:
            raise RuntimeError(f"ack_many: {acked} of {n} acked")
        await self._check_len(coord.keys.queue(RECIPIENT).ready_for(MessagePriority.NORMAL), 0)
        return sample

    async def raw_receive_batch_xack(self, prefix: str, n: int) -> Sample:
        stream = await self._raw_stream(prefix, n)
        client = self.client

        async def body() -> None:
            for _ in range(n // BATCH):
                reply: Any = await client.xreadgroup(GROUP, CONSUMER, {stream: ">"}, count=BATCH)
                await client.xack(stream, GROUP, *[e[0] for e in reply[0][1]])

        sample = await self._timed(n, body)
        await self._check_len(stream, n)
        return sample

    async def raw_receive_batch_xack_xdel(self, prefix: str, n: int) -> Sample:
        stream = await self._raw_stream(prefix, n)
        client = self.client

        async def body() -> None:
            for _ in range(n // BATCH):
                reply: Any = await client.xreadgroup(GROUP, CONSUMER, {stream: ">"}, count=BATCH)
                ids = [e[0] for e in reply[0][1]]
                async with client.pipeline(transaction=False) as pipe:
                    pipe.xack(stream, GROUP, *ids)
                    pipe.xdel(stream, *ids)
                    await pipe.execute()

        sample = await self._timed(n, body)
        await self._check_len(stream, 0)
        return sample

    # --- plan -------------------------------------------------------------------------

    def operations(self, n_single: int, n_batched: int) -> list[Operation]:
        n_batched -= n_batched % BATCH
        return [
            Operation(
                "send",
                "`send_message`, one await per message",
                n_single,
                Variant("ours", self.ours_send),
                [Variant("`XADD` per message", self.raw_send)],
            ),
            Operation(
                "send_many",
                f"`send_many`, batches of {BATCH}",
                n_batched,
                Variant("ours", self.ours_send_many),
                [Variant(f"pipelined `XADD` x{BATCH}", self.raw_send_pipelined)],
            ),
            Operation(
                "receive",
                "`receive` + `ack`, one at a time",
                n_single,
                Variant("ours", self.ours_receive),
                [
                    Variant(
                        "`XREADGROUP COUNT 1` + pipelined `XACK`+`XDEL`",
                        self.raw_receive_xack_xdel,
                    ),
                    Variant("`XREADGROUP COUNT 1` + `XACK` only", self.raw_receive_xack),
                ],
            ),
            Operation(
                "receive_batch",
                f"`receive_batch({BATCH})` + `ack_many`",
                n_batched,
                Variant("ours", self.ours_receive_batch),
                [
                    Variant(
                        f"`XREADGROUP COUNT {BATCH}` + pipelined multi-id `XACK`+`XDEL`",
                        self.raw_receive_batch_xack_xdel,
                    ),
                    Variant(
                        f"`XREADGROUP COUNT {BATCH}` + multi-id `XACK` only",
                        self.raw_receive_batch_xack,
                    ),
                ],
            ),
        ]

    async def measure(self, ops: list[Operation], repetitions: int) -> None:
        # Warm-up: load the scripts, open the connection, warm pydantic and the allocator.
        for op in ops:
            for i, variant in enumerate([op.ours, *op.floors]):
                prefix = f"{self.run_prefix}:w:{op.key}:{i}"
                try:
                    await variant.run(prefix, 2 * BATCH)
                finally:
                    await delete_prefix(self.client, prefix)
        for rep in range(repetitions):
            for op in ops:
                variants = [op.ours, *op.floors]
                if rep % 2:  # alternate the order so neither side always runs first
                    variants.reverse()
                for variant in variants:
                    index = [op.ours, *op.floors].index(variant)
                    prefix = f"{self.run_prefix}:{rep}:{op.key}:{index}"
                    try:
                        sample = await variant.run(prefix, op.n)
                    finally:
                        await delete_prefix(self.client, prefix)
                    variant.samples.append(sample)
                    print(
                        f"  rep {rep + 1} {op.key:<14} {variant.label[:48]:<48} "
                        f"{sample.rate:>10,.0f} msg/s  "
                        f"server {sample.server_us_per_msg:6.1f} us/msg  "
                        f"client CPU {sample.client_us_per_msg:6.1f} us/msg",
                        flush=True,
                    )


# --- reporting -------------------------------------------------------------------------


def machine_info(redis_info: dict[str, Any]) -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        hiredis_version = __import__("hiredis").__version__
    except ImportError:
        hiredis_version = "not installed"
    return {
        "Date (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "redis-py": redis.__version__,
        "hiredis": f"{'yes' if HIREDIS_AVAILABLE else 'no'} ({hiredis_version})",
        "Redis server": (
            f"{redis_info.get('redis_version', '?')} "
            f"({redis_info.get('os', '?')}, {redis_info.get('arch_bits', '?')}-bit)"
        ),
        "CPU": f"{os.cpu_count()} x {model}",
        "OS": platform.platform(),
        "Load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def fmt_rate(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def report(
    ops: list[Operation], info: dict[str, str], repetitions: int, envelope_bytes: int, quick: bool
) -> tuple[str, list[tuple[str, bool]]]:
    lines = [
        f"Last run: {info['Date (UTC)']} UTC{' (quick run)' if quick else ''}; "
        f"{repetitions} repetitions, median (min-max); {len(json.dumps(PAYLOAD))} B payload, "
        f"{envelope_bytes} B JSON envelope per message.",
        "",
        "| Operation | N | Ours msg/s | Raw floor | Floor msg/s | Ours/raw (min-max) "
        "| Server µs/msg ours / raw | Client CPU µs/msg ours / raw | Target ≥ 70% |",
        "|---|---:|---:|---|---:|---:|---:|---:|:---:|",
    ]
    verdicts: list[tuple[str, bool]] = []
    for op in ops:
        ours = op.ours.rates()
        for i, floor in enumerate(op.floors):
            raw = floor.rates()
            ratio = statistics.median(ours) / statistics.median(raw)
            paired = [o / r for o, r in zip(ours, raw, strict=True)]
            if i == 0:
                passed = ratio >= TARGET
                verdicts.append((op.title, passed))
                verdict = "**PASS**" if passed else "**MISS**"
                title = op.title
            else:
                verdict = "(info)"
                title = "↳ same, other floor"
            lines.append(
                f"| {title} | {op.n:,} | {fmt_rate(ours)} | {floor.label} | {fmt_rate(raw)} "
                f"| {ratio:.0%} ({min(paired):.0%}-{max(paired):.0%}) "
                f"| {op.ours.median_server_us():.1f} / {floor.median_server_us():.1f} "
                f"| {op.ours.median_client_us():.1f} / {floor.median_client_us():.1f} "
                f"| {verdict} |"
            )
    lines += ["", "Machine:", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    return "\n".join(lines), verdicts


INTRO = f"""# Benchmarks

## `scripts/bench_coordinator.py`: the coordinator against raw redis-py

What is measured: the throughput (messages/s) of `RedisMessageCoordinator` for single
sends, batched sends, single receive + ack and batched receive + ack, each against the
cheapest redis-py code that moves the same bytes (the *raw floor*), in the same run, on the
same client. Issue 2's target: every operation reaches at least 70% of its raw floor.

How to run it (a real Redis; URL from `--redis-url`, else `{URL_ENV}`, else
`{DEFAULT_URL}`):

```sh
uv run python scripts/bench_coordinator.py            # full run, rewrites the table below
uv run python scripts/bench_coordinator.py --quick    # smoke run, prints only
uv run python scripts/bench_coordinator.py --profile receive   # cProfile of one of ours
```

Method:

- One asyncio Redis client (redis-py with hiredis, default settings, one connection in
  use at a time) serves both sides; everything runs sequentially in one event loop.
- Every message carries the same ~100-byte payload. The raw floor stores the message id
  and the same JSON envelope (serialised before the clock starts) with `XADD`; ours
  is given ready-built `AgentMessage` objects, so its time includes stamping and
  serialising them, and decoding deliveries back into `ReceivedMessage`.
- Single operations: N = 5 000 messages; batched: N = 20 000 in batches of 100.
  Receive rows start from a queue preloaded (untimed) with N messages.
- The coordinator runs with its defaults (the default `RedisGuard`: circuit breaker and
  retries around every call; no-op metrics) except
  `queue_size`, raised so 20 000 messages fit in one queue.
- Receive floors: *`XACK`+`XDEL`* (pipelined in one round trip) has the same semantics as
  ours (the coordinator deletes on ack) and is the floor the target is judged against;
  *`XACK` only* is shown for reference.
- Three repetitions after an untimed warm-up, alternating which side runs first; fresh
  keys for every run, deleted right after it. Reported: median and min-max of
  messages/s; the ratio is of the medians, with the min-max of the per-repetition ratios.
- *Server µs/msg* is the growth of `INFO commandstats` `usec` (server-wide) over the
  timed run, divided by N: the time Redis itself spent. For ours only script calls
  count (a script's inner commands are also listed under their own names), for the raw
  floors every other command. Approximate: other clients of the server are counted too.
- *Client CPU µs/msg* is the benchmark process's CPU time (`time.process_time`) over the
  timed run, divided by N: the Python side (serialisation, redis-py, asyncio). What is
  left of the wall time per message is waiting: the round trip and scheduling.

{START}
{END}
"""


def write_doc(path: Path, section: str) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(INTRO, encoding="utf-8")
    replace_block(path, START, END, f"{START}\n{section}\n{END}")


# --- main ------------------------------------------------------------------------------


async def profile(bench: Bench, key: str, n_single: int, n_batched: int) -> None:
    ops = {op.key: op for op in bench.operations(n_single, n_batched)}
    op = ops[key]
    prefix = f"{bench.run_prefix}:p"
    try:
        await op.ours.run(prefix + "w", 2 * BATCH)  # warm-up
    finally:
        await delete_prefix(bench.client, prefix)
    profiler = bench.profiler = cProfile.Profile()
    try:
        sample = await op.ours.run(prefix, op.n)
    finally:
        bench.profiler = None
        await delete_prefix(bench.client, prefix)
    print(f"{op.title}: {sample.rate:,.0f} msg/s under cProfile (n={op.n})")
    for sort in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(sort).print_stats(30)
        print(out.getvalue())


async def main(args: argparse.Namespace) -> int:
    url = args.redis_url or os.environ.get(URL_ENV) or DEFAULT_URL
    n_single = args.n_single or (500 if args.quick else 5_000)
    n_batched = args.n_batched or (2_000 if args.quick else 20_000)
    client = aioredis.Redis.from_url(url)
    run_prefix = f"bcb-{uuid.uuid4().hex[:12]}"
    try:
        await client.ping()
        redis_info: dict[str, Any] = await client.info("server")
        bench = Bench(client, run_prefix)
        if args.profile:
            await profile(bench, args.profile, n_single, n_batched)
            return 0
        info = machine_info(redis_info)
        print(f"Redis {url} ({info['Redis server']}), key prefix {run_prefix}")
        for k, v in info.items():
            print(f"  {k}: {v}")
        ops = bench.operations(n_single, n_batched)
        started = time.perf_counter()
        await bench.measure(ops, args.repetitions)
        print(f"measured in {time.perf_counter() - started:.0f} s\n")
        envelope_bytes = len(raw_entries(make_messages(1))[0]["m"].encode())
        section, verdicts = report(ops, info, args.repetitions, envelope_bytes, args.quick)
        print(section)
        print()
        for title, passed in verdicts:
            print(f"{'PASS' if passed else 'MISS'}  {title}")
        if args.write or (not args.quick and not args.no_write):
            write_doc(args.output, section)
            print(f"\nwrote {args.output}")
        return 0
    finally:
        try:
            leftover = await delete_prefix(client, run_prefix)
            if leftover:
                print(f"cleaned up {leftover} leftover keys", file=sys.stderr)
        finally:
            await client.aclose()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--redis-url", help=f"default: ${URL_ENV} or {DEFAULT_URL}")
    parser.add_argument("--quick", action="store_true", help="small N; prints, does not write")
    parser.add_argument("--n-single", type=int, help="messages per single-op run (5 000)")
    parser.add_argument("--n-batched", type=int, help="messages per batched run (20 000)")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--output", type=Path, default=DOC_PATH)
    parser.add_argument("--write", action="store_true", help="write the doc even with --quick")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--profile",
        choices=["send", "send_many", "receive", "receive_batch"],
        help="run one of ours once under cProfile and print the hot spots",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
