"""Scenario 2: Redis is killed with SIGKILL and restarted from its append-only file.

The server runs with ``appendonly yes`` and ``appendfsync always``: Redis fsyncs every write
before it answers, so every send that reported ``delivered=True`` before the kill must be
in the restarted server. A worker process consumes while a producer sends; Redis and the
worker die together mid-stream (a host crash: the worker's reconnection across an outage
is scenario 4's subject, issue 23 item 6). Redis restarts on the same port and directory,
a replacement worker registers once the dead one's registration (restored from the AOF)
expires, and gets its leased messages back.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial

import pytest

from tta_agent_coordination import AgentId, RedisMessageCoordinator
from tta_agent_coordination.resilience import PassthroughGuard
from tta_agent_coordination.settings import CoordinationSettings
from tta_agent_coordination.testing import unique_prefix

from .ledger import account, handled_all, read_ledger
from .processes import WorkerConfig, WorkerProcesses
from .producer import Producer
from .servers import RedisServers
from .waiting import settled_queues, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.real_redis, pytest.mark.slow]

AGENT = AgentId("faof", "w1")
TOTAL = 3_000
HEARTBEAT_TTL_S = 2.0
RECOVERY_BOUND_S = 10.0
"""Redis answering again -> the replacement handles its first message: the AOF loads,
the dead worker's restored registration expires (``HEARTBEAT_TTL_S``), a Python process
starts and registers. Measured: see docs/operations.md (Failure modes)."""
DRAIN_LIMIT_S = 45.0


async def test_redis_kill9_with_aof_keeps_every_acknowledged_send(
    redis_servers: RedisServers, worker_processes: WorkerProcesses
) -> None:
    server = await redis_servers.start(aof=True)
    prefix = unique_prefix("faults")

    def config(name: str, register_wait_s: float = 0.0) -> WorkerConfig:
        return WorkerConfig(
            redis_url=server.url,
            prefix=prefix,
            agent=str(AGENT),
            name=name,
            handler_s=0.02,
            heartbeat_ttl_s=HEARTBEAT_TTL_S,
            register_wait_s=register_wait_s,
        )

    first = worker_processes.start(config("first"))
    await first.wait_ready()
    settings = CoordinationSettings(redis_url=server.url, key_prefix=prefix)
    client = settings.redis_client()
    producer = Producer(settings.build_coordinator(client), [AGENT], tag="aof")
    sending = asyncio.create_task(
        producer.run(total=TOTAL, batch=20, pause_s=0.01, stop_on_refusal=True)
    )
    try:
        # Mid-stream: a backlog in the queue, some messages leased, some acked.
        busy = await wait_until(
            lambda: (
                len(producer.delivered) >= 400
                and len(read_ledger(worker_processes.ledger_dir)) >= 50
            ),
            limit_s=30,
        )
        assert busy is not None, "the stream did not get going"
        server.kill9()
        first.kill9()
        # The producer notices the outage on its next send and stops.
        await asyncio.wait_for(sending, 30)
    finally:
        if not sending.done():
            sending.cancel()
        await client.aclose()
    # Every send that reported success was answered, so fsynced, before the kill.
    acknowledged = set(producer.delivered)
    assert producer.refused, "the kill came after the stream ended"

    up_at = await server.restart()
    restarted_at = time.time() - (time.monotonic() - up_at)
    replacement = worker_processes.start(config("replacement", register_wait_s=20.0))

    all_handled = partial(handled_all, acknowledged, worker_processes.ledger_dir)

    drained = await wait_until(all_handled, limit_s=DRAIN_LIMIT_S, interval_s=0.2)
    records = read_ledger(worker_processes.ledger_dir)
    checker = RedisMessageCoordinator(server.client(), key_prefix=prefix, guard=PassthroughGuard())
    dead = {
        (letter.message_id or letter.dead_letter_id) for letter in await checker.dead_letters(AGENT)
    }
    result = account(acknowledged, records, dead, faulted=lambda h: h.worker == first.name)
    after = [h for h in records if h.worker == replacement.name]
    recovery_s = after[0].t - restarted_at if after else float("inf")
    print(
        f"\nscenario 2: acknowledged={len(acknowledged)} handled={result.handled} "
        f"redelivered={result.redeliveries} recovery={recovery_s:.2f}s drain={drained}"
    )
    result.assert_ok()
    assert drained is not None, f"not drained in time:\n{replacement.log_tail()}"
    assert recovery_s <= RECOVERY_BOUND_S, f"recovery took {recovery_s:.2f}s"
    [stats] = await settled_queues(checker, [AGENT])
    assert (stats.unsettled, stats.dead) == (0, 0), stats
