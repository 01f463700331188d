"""Send throughput without a store, with ``durability="async"`` and with ``"sync"``.

Real Redis (TTA_COORD_TEST_REDIS_URL) and real Postgres (TTA_COORD_TEST_POSTGRES_DSN),
each run in its own key prefix and schema (removed afterwards). Prints a markdown table
for docs/benchmarks.md.

    uv run python scripts/bench_store.py [--messages 20000] [--producers 8] [--rounds 3]

Per mode and round it measures:

* the **send rate**: messages / time until the last ``send_message`` returned (what
  producers see; in ``async`` mode the write-behind buffer may still hold events, but at
  most ``store_max_pending`` of them: a slower store makes senders wait);
* the **durable rate**: messages / time until every event is in Postgres (the ``async``
  mode's final flush included);
* CPU milliseconds per 1 000 messages of the producer process, of Redis (``INFO cpu``)
  and of the Postgres server (every ``postgres`` process, reaped backends included),
  because on a small machine the three compete for the same cores.

Medians over the rounds, with the range of the durable rate.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tta_agent_coordination import AgentId, AgentMessage, MessageType, RedisMessageCoordinator
from tta_agent_coordination.testing.backends import delete_prefix, real_redis
from tta_agent_coordination_postgres import PostgresMessageStore

SENDER = AgentId("bench", "producer")
MODES = ("none", "async", "sync")


@dataclass
class Round:
    send_rate: float
    durable_rate: float
    producer_ms: float
    redis_ms: float
    postgres_ms: float


def postgres_cpu_s() -> float:
    """CPU seconds of every ``postgres`` process so far (reaped children included)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        if comm != "postgres":
            continue
        fields = text[text.rindex(")") + 2 :].split()
        # fields[11:15]: utime, stime, cutime, cstime (proc(5), counted from "state").
        total += sum(int(f) for f in fields[11:15])
    return total / tick


async def redis_cpu_s(client: object) -> float:
    info = await client.info("cpu")  # type: ignore[attr-defined]
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def run(mode: str, total: int, producers: int, dsn: str, batch: int, pending: int) -> Round:
    client = await real_redis()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    store = None
    if mode != "none":
        store = PostgresMessageStore(dsn, schema=f"bench_{uuid.uuid4().hex[:8]}", max_size=8)
        await store.migrate()
    c = RedisMessageCoordinator(
        client,
        key_prefix=prefix,
        store=store,
        durability="sync" if mode == "sync" else "async",
        queue_size=total + 1,
        store_batch_size=batch,
        store_max_pending=pending,
    )
    per = total // producers
    recipients = [AgentId("bench", f"q{i}") for i in range(producers)]

    async def produce(p: int) -> None:
        for i in range(per):
            m = AgentMessage(
                sender=SENDER,
                recipient=recipients[p],
                message_type=MessageType.EVENT,
                payload={"i": i, "text": "x" * 200},
            )
            r = await c.send_message(SENDER, recipients[p], m)
            assert r.delivered, r.error

    cpu0, redis0, pg0 = time.process_time(), await redis_cpu_s(client), postgres_cpu_s()
    start = time.perf_counter()
    await asyncio.gather(*(produce(p) for p in range(producers)))
    sent = time.perf_counter() - start
    await c.aclose()  # async mode: writes everything still buffered
    durable = time.perf_counter() - start
    cpu1, redis1, pg1 = time.process_time(), await redis_cpu_s(client), postgres_cpu_s()
    n = per * producers
    if store is not None:
        stats = await store.stats()
        assert stats.unsettled == n, stats
        await store.drop_schema()
        await store.aclose()
    await delete_prefix(client, prefix)
    await client.aclose()
    k = n / 1000
    return Round(
        n / sent, n / durable, (cpu1 - cpu0) * 1e3 / k, (redis1 - redis0) * 1e3 / k,
        (pg1 - pg0) * 1e3 / k,
    )  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--producers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500, help="store_batch_size")
    parser.add_argument("--max-pending", type=int, default=10_000, help="store_max_pending")
    args = parser.parse_args()
    dsn = os.environ.get("TTA_COORD_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    rounds: dict[str, list[Round]] = {m: [] for m in MODES}
    for i in range(args.rounds):
        # Rotate the order so that no mode always runs on a warmer (or more tired) machine.
        for mode in MODES[i % 3 :] + MODES[: i % 3]:
            rounds[mode].append(
                await run(mode, args.messages, args.producers, dsn, args.batch, args.max_pending)
            )

    def med(mode: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in rounds[mode])

    base_send, base_durable = med("none", "send_rate"), med("none", "durable_rate")
    print(
        f"<!-- Python {platform.python_version()}, {args.messages} messages, {args.producers} "
        f"producers, store_batch_size {args.batch}, store_max_pending {args.max_pending}, "
        f"median of {args.rounds} rounds -->"
    )
    print(
        "| store | durability | sends/s (producers) | vs. none | durable msgs/s (range) "
        "| vs. none | CPU ms / 1k msgs: producer · Redis · Postgres |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    for mode in MODES:
        durable = [r.durable_rate for r in rounds[mode]]
        print(
            f"| {'none' if mode == 'none' else 'Postgres'} | {'-' if mode == 'none' else mode} "
            f"| {med(mode, 'send_rate'):,.0f} | {med(mode, 'send_rate') / base_send:.0%} "
            f"| {med(mode, 'durable_rate'):,.0f} ({min(durable):,.0f}-{max(durable):,.0f}) "
            f"| {med(mode, 'durable_rate') / base_durable:.0%} "
            f"| {med(mode, 'producer_ms'):.0f} · {med(mode, 'redis_ms'):.0f} "
            f"· {med(mode, 'postgres_ms'):.0f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
