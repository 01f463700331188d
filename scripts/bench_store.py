"""Send throughput without a store, with ``durability="async"`` and with ``"sync"``.

Real Redis (TTA_COORD_TEST_REDIS_URL) and real Postgres (TTA_COORD_TEST_POSTGRES_DSN),
each run in its own key prefix and schema (removed afterwards). Prints a markdown table
for docs/benchmarks.md.

    uv run python scripts/bench_store.py [--messages 20000] [--producers 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
import uuid

from tta_agent_coordination import AgentId, AgentMessage, MessageType, RedisMessageCoordinator
from tta_agent_coordination.testing.backends import delete_prefix, real_redis
from tta_agent_coordination_postgres import PostgresMessageStore

SENDER = AgentId("bench", "producer")


async def run(mode: str, total: int, producers: int, dsn: str) -> float:
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
        store_batch_size=2000,
        store_max_pending=50_000,
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

    start = time.perf_counter()
    await asyncio.gather(*(produce(p) for p in range(producers)))
    await c.aclose()  # async mode: the rate includes writing everything to Postgres
    elapsed = time.perf_counter() - start
    if store is not None:
        stats = await store.stats()
        assert stats.unsettled == per * producers, stats
        await store.drop_schema()
        await store.aclose()
    await delete_prefix(client, prefix)
    await client.aclose()
    return per * producers / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--producers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    dsn = os.environ.get("TTA_COORD_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for mode in ("none", "async", "sync"):
            rate = await run(mode, args.messages, args.producers, dsn)
            best[mode] = max(best.get(mode, 0.0), rate)
    base = best["none"]
    print(
        f"<!-- {platform.python_version()}, {args.messages} messages, {args.producers} "
        f"producers, best of {args.rounds} -->"
    )
    print("| store | durability | sends/s | vs. no store |")
    print("|---|---|---:|---:|")
    print(f"| none | - | {base:,.0f} | 100% |")
    for mode in ("async", "sync"):
        print(f"| Postgres | {mode} | {best[mode]:,.0f} | {best[mode] / base:.0%} |")


if __name__ == "__main__":
    asyncio.run(main())
