"""Does a Redis Cluster scale the coordinator out? Sends and drains with 1, 2 and 3 primaries.

Not a test: a benchmark (issue 19). For each size it starts a private Cluster of that many
primaries (no replicas) on loopback ports 7400+ (``redis-server`` with cluster mode on,
slots split evenly with ``CLUSTER ADDSLOTSRANGE``, nodes joined with ``CLUSTER MEET``), then
in one client process:

* **send**: ``--messages`` messages in ``send_many`` batches of 100, spread over
  ``--queues`` agent queues (their hash tags spread over every primary), ``--concurrency``
  batches in flight;
* **drain**: every queue read with ``receive_batch`` (100) and acked with ``ack_many``,
  ``--concurrency`` queues at a time, until all are empty.

It prints msg/s for both and writes them into ``docs/benchmarks.md``. The nodes are
stopped and their files deleted afterwards; nothing else is touched. On a machine with
fewer cores than primaries plus the client, more primaries cannot help: the result says
how many cores it ran on.

    uv run python scripts/bench_cluster.py             # 1, 2, 3 primaries; writes the doc
    uv run python scripts/bench_cluster.py --quick     # 2,000 messages, prints only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
import structlog

from doc_block import replace_block
from tta_agent_coordination.models import AgentId, AgentMessage, MessageType
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.settings import CoordinationSettings

BASE_PORT = 7400
SLOTS = 16384
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
START = "<!-- bench_cluster:start -->"
END = "<!-- bench_cluster:end -->"
SENDER = AgentId("bench_cluster_sender")


@dataclass
class Result:
    primaries: int
    send_per_s: float
    drain_per_s: float


class PrivateCluster:
    """``n`` cluster-mode redis-servers on loopback, all slots assigned, no replicas."""

    def __init__(self, n: int) -> None:
        self.ports = [BASE_PORT + i for i in range(n)]
        self.dir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))

    def start(self) -> str:
        for port in self.ports:
            work = self.dir / str(port)
            work.mkdir()
            subprocess.run(
                [
                    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1",
                    "--port", str(port), "--dir", str(work), "--save", "", "--appendonly", "no",
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--pidfile", str(work / "redis.pid"), "--logfile", str(work / "redis.log"),
                ],
                check=True,
            )  # fmt: skip
        clients = [self._wait(port) for port in self.ports]
        share = SLOTS // len(self.ports)
        for i, client in enumerate(clients):
            last = SLOTS - 1 if i == len(clients) - 1 else (i + 1) * share - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * share, last)
        for client in clients[1:]:
            client.execute_command("CLUSTER", "MEET", "127.0.0.1", self.ports[0])
        for _ in range(200):
            infos = [c.execute_command("CLUSTER", "INFO") for c in clients]
            if all(b"cluster_state:ok" in _raw(info) for info in infos):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("the private cluster did not reach state ok")
        for client in clients:
            client.close()
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def stop(self) -> None:
        for port in self.ports:
            # already gone, or the shutdown closed the connection: either way it is down
            with contextlib.suppress(redis.RedisError):
                redis.Redis(port=port).shutdown(nosave=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _wait(port: int) -> redis.Redis:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                return client
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {port} did not start")


def _raw(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


async def measure(url: str, primaries: int, messages: int, queues: int, concurrency: int) -> Result:
    client = CoordinationSettings(redis_url=url, max_connections=concurrency * 4).redis_client()
    coord = RedisMessageCoordinator(client, key_prefix="bcl", queue_size=messages)
    agents = [AgentId("bench", f"q{i}") for i in range(queues)]
    batches = [
        [
            AgentMessage(
                sender=SENDER,
                recipient=agents[(start + j) % queues],
                message_type=MessageType.EVENT,
                payload={"n": start + j, "pad": "x" * 64},
            )
            for j in range(min(100, messages - start))
        ]
        for start in range(0, messages, 100)
    ]
    pending = iter(batches)

    async def sender() -> None:
        for batch in pending:
            results = await coord.send_many(batch)
            assert all(r.delivered for r in results)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    send_s = time.perf_counter() - started
    todo = iter(agents)
    drained = 0

    async def drainer() -> None:
        nonlocal drained
        for agent in todo:
            while batch := await coord.receive_batch(agent, 100):
                await coord.ack_many(agent, [r.token for r in batch])
                drained += len(batch)

    started = time.perf_counter()
    await asyncio.gather(*(drainer() for _ in range(concurrency)))
    drain_s = time.perf_counter() - started
    assert drained == messages, f"drained {drained} of {messages}"
    await coord.aclose()
    await client.aclose()
    return Result(primaries, messages / send_s, messages / drain_s)


def render(results: list[Result], messages: int, queues: int, concurrency: int) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        START,
        f"Measured {when} by `scripts/bench_cluster.py` ({platform.machine()}, "
        f"{os.cpu_count()} cores shared by the client and every primary; {messages:,} "
        f"messages over {queues} queues, batches of 100, {concurrency} in flight):",
        "",
        "| primaries | send msg/s | drain (receive + ack) msg/s |",
        "|---:|---:|---:|",
    ]
    lines += [f"| {r.primaries} | {r.send_per_s:,.0f} | {r.drain_per_s:,.0f} |" for r in results]
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--queues", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sizes", default="1,2,3")
    parser.add_argument("--quick", action="store_true", help="2,000 messages, print only")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.quick:
        args.messages = 2_000
    results: list[Result] = []
    for n in (int(x) for x in args.sizes.split(",")):
        cluster = PrivateCluster(n)
        try:
            url = cluster.start()
            results.append(
                asyncio.run(measure(url, n, args.messages, args.queues, args.concurrency))
            )
        finally:
            cluster.stop()
    block = render(results, args.messages, args.queues, args.concurrency)
    print(block)
    if not args.quick:
        heading = "## Redis Cluster: 1, 2, 3 primaries\n\n"
        replace_block(DOC_PATH, START, END, block, missing=heading)


if __name__ == "__main__":
    main()
