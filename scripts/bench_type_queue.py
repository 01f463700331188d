"""Competing instances on one type-wide queue: throughput, exclusivity and a SIGKILL.

Not a test: a load benchmark against a real Redis (issue 14 §1). One producer sends
``--messages`` messages to ``AgentId("bench_tq")`` (any instance of the type) while
1, 2 and 4 worker *processes* consume it, each an ``AgentWorker`` for
``bench_tq:w<i>`` (its own queue first, then the type's). Each handler appends
``message_id token instance`` to its own file with one ``O_APPEND`` write before it
returns, so the record survives a SIGKILL of the process. The benchmark then checks:

* **no loss**: every message sent was handled at least once;
* **exclusive leases**: no lease token was handled by two instances;
* **duplicates explained**: without a kill there are none; with one, every message
  handled twice was first handled by the killed process (its lease ran out and the
  message was redelivered to a survivor).

The handler simulates an agent's I/O with ``--work-ms`` of ``asyncio.sleep`` (default
2 ms), so instances add capacity the way they do for agents calling a model, not just
CPU on this 2-core machine.

Run it with::

    uv run python scripts/bench_type_queue.py          # 1, 2, 4 processes, a kill; writes docs
    uv run python scripts/bench_type_queue.py --quick  # 2,000 messages, prints only

The Redis URL comes from ``--redis-url``, else ``TTA_COORD_BENCH_REDIS_URL``, else
``redis://127.0.0.1:6379/14``. Keys live under a unique ``btq-<hex>`` prefix and are
deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
import platform
import signal
import subprocess  # nosec B404 - starts this same script as worker processes
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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
START = "<!-- bench_type_queue:start -->"
END = "<!-- bench_type_queue:end -->"
TYPE = "bench_tq"
SENDER = AgentId("bench_tq_producer", "p1")
_SEND_BATCH = 100


@dataclass
class Run:
    """One run: ``processes`` workers consuming ``messages`` messages."""

    processes: int
    messages: int
    killed: bool
    seconds: float
    handled_by: dict[str, int]
    lost: int
    duplicates: int
    unexplained_duplicates: int
    shared_tokens: int

    @property
    def rate(self) -> float:
        """Messages handled per second, first send to last handled."""
        return self.messages / self.seconds if self.seconds else 0.0


# --- worker process ---------------------------------------------------------------------


async def _work(url: str, prefix: str, instance: str, log_path: str, work_s: float) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    client = aioredis.Redis.from_url(url)
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    async def handle(ctx: MessageContext) -> None:
        if work_s:
            await asyncio.sleep(work_s)
        os.write(fd, f"{ctx.message.message_id} {ctx.token} {instance}\n".encode())

    worker = AgentWorker(
        coordinator,
        None,
        AgentId(TYPE, instance),
        visibility_timeout=3.0,
        poll_interval=1.0,
        maintenance_interval=1.0,
    )
    worker.add_handler(handle, MessageType.REQUEST)
    await worker.run()  # until SIGTERM
    os.close(fd)
    await coordinator.aclose()
    await client.aclose()


# --- driver -----------------------------------------------------------------------------


def _spawn(
    url: str, prefix: str, instance: str, log_path: Path, work_ms: float
) -> subprocess.Popen[bytes]:
    args = [sys.executable, __file__, "--worker", instance, "--prefix", prefix]
    args += ["--redis-url", url, "--log", str(log_path), "--work-ms", str(work_ms)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL)  # nosec B603 - our own script


def _read_logs(logs: dict[str, Path]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for path in logs.values():
        if path.exists():
            for line in path.read_text().splitlines():
                parts = line.split(" ")
                if len(parts) == 3:
                    rows.append((parts[0], parts[1], parts[2]))
    return rows


async def one_run(url: str, processes: int, messages: int, work_ms: float, *, kill: bool) -> Run:
    """Start ``processes`` workers, send ``messages``, wait until all are handled."""
    prefix = f"btq-{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(url)
    # The whole run is sent before the workers drain it: room for all of it.
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix, queue_size=messages + 1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-tq-"))
    logs = {f"w{i}": tmp / f"w{i}.log" for i in range(processes)}
    procs = {name: _spawn(url, prefix, name, path, work_ms) for name, path in logs.items()}
    recipient = AgentId(TYPE)  # any instance of the type
    ids = [f"m{n:07d}" for n in range(messages)]
    killed = "w0" if kill else None
    try:
        await asyncio.sleep(2.0)  # the workers start and park on their queues
        started = time.perf_counter()
        for i in range(0, messages, _SEND_BATCH):
            batch = [
                AgentMessage(
                    message_id=mid,
                    sender=SENDER,
                    recipient=recipient,
                    message_type=MessageType.REQUEST,
                    payload={"n": mid},
                )
                for mid in ids[i : i + _SEND_BATCH]
            ]
            results = await coordinator.send_many(batch)
            refused = [r for r in results if not r.delivered]
            if refused:
                raise RuntimeError(f"send refused: {refused[0].error}")
        seen: set[str] = set()
        last_change, finished = time.perf_counter(), started
        while len(seen) < messages:
            await asyncio.sleep(0.05)
            rows = _read_logs(logs)
            now_seen = {r[0] for r in rows}
            if len(now_seen) != len(seen):
                last_change = finished = time.perf_counter()
            seen = now_seen
            if killed and procs[killed].poll() is None and len(seen) >= messages // 3:
                procs[killed].send_signal(signal.SIGKILL)
            if time.perf_counter() - last_change > 30:
                break  # stuck: reported as lost below
        rows = _read_logs(logs)
        return _check(processes, messages, kill, finished - started, ids, rows, killed)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        await coordinator.aclose()
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i : i + 500])
        await client.aclose()
        _remove(tmp, logs)


def _remove(tmp: Path, logs: dict[str, Path]) -> None:
    for path in logs.values():
        path.unlink(missing_ok=True)
    tmp.rmdir()


def _check(
    processes: int,
    messages: int,
    kill: bool,
    seconds: float,
    ids: list[str],
    rows: list[tuple[str, str, str]],
    killed: str | None,
) -> Run:
    by_message: dict[str, list[str]] = collections.defaultdict(list)
    by_token: dict[str, set[str]] = collections.defaultdict(set)
    for mid, token, instance in rows:
        by_message[mid].append(instance)
        by_token[token].add(instance)
    lost = sum(1 for mid in ids if mid not in by_message)
    duplicates = [handlers for handlers in by_message.values() if len(handlers) > 1]
    unexplained = sum(1 for handlers in duplicates if handlers[0] != killed)
    return Run(
        processes=processes,
        messages=messages,
        killed=kill,
        seconds=seconds,
        handled_by=dict(collections.Counter(instance for _, _, instance in rows)),
        lost=lost,
        duplicates=len(duplicates),
        unexplained_duplicates=unexplained,
        shared_tokens=sum(1 for instances in by_token.values() if len(instances) > 1),
    )


def _render(runs: list[Run], work_ms: float) -> str:
    lines = [
        START,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {platform.system()} "
        f"({os.cpu_count()} cores), Python {platform.python_version()}, by "
        f"`scripts/bench_type_queue.py`: one producer (`send_many` of {_SEND_BATCH}) to "
        f'`AgentId("{TYPE}")`, worker processes with default `AgentWorker` options '
        f"(visibility 3 s), {work_ms:g} ms of simulated I/O per handler.",
        "",
        "| processes | SIGKILL | messages | msg/s | handled per instance | lost | "
        "duplicates (unexplained) | tokens on two instances |",
        "|---:|:--:|---:|---:|---|---:|---:|---:|",
    ]
    for r in runs:
        spread = ", ".join(f"{k} {v:,}" for k, v in sorted(r.handled_by.items()))
        lines.append(
            f"| {r.processes} | {'w0 at 1/3' if r.killed else '-'} | {r.messages:,} | "
            f"{r.rate:,.0f} | {spread} | {r.lost} | {r.duplicates} "
            f"({r.unexplained_duplicates}) | {r.shared_tokens} |"
        )
    lines += ["", END]
    return "\n".join(lines)


def _write_doc(block: str) -> None:
    heading = "## Type-wide queues: competing instances (`scripts/bench_type_queue.py`)\n\n"
    replace_block(DOC_PATH, START, END, block, missing=heading)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one worker process of it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default=os.environ.get(URL_ENV, DEFAULT_URL))
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--processes", default="1,2,4", help="comma-separated counts")
    parser.add_argument("--work-ms", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="2,000 messages, print only")
    parser.add_argument("--no-write", action="store_true", help="do not update the docs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(_work(args.redis_url, args.prefix, args.worker, args.log, args.work_ms / 1000))
        return 0
    messages = 2_000 if args.quick else args.messages
    runs = [
        asyncio.run(one_run(args.redis_url, int(p), messages, args.work_ms, kill=False))
        for p in args.processes.split(",")
    ]
    runs.append(asyncio.run(one_run(args.redis_url, 2, messages, args.work_ms, kill=True)))
    block = _render(runs, args.work_ms)
    print(block)
    failed = [r for r in runs if r.lost or r.unexplained_duplicates or r.shared_tokens]
    if not (args.quick or args.no_write):
        _write_doc(block)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
