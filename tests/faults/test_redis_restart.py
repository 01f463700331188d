"""Scenario 4b: Redis is killed (SIGKILL) and restarted 3 s later; every process stays up.

Unlike scenario 2 (Redis and the worker die together), the worker process and the test's
senders keep running through the outage, built as an application builds them
(``CoordinationSettings`` client, the default guard). Redis keeps an append-only file
(``appendfsync always``) and restarts on the same port and data, so queues and
registrations survive; what is measured is how long after Redis answers again the worker
handles and the senders get sends accepted (issue 23 item 6: a 3 s restart used to cost
57 s, the breaker's 60 s open time).
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

AGENT = AgentId("frestart", "w1")
SENDERS = 8
OUTAGE_S = 3.0
RECOVERY_BOUND_S = 5.0
"""Redis answering again -> the worker handles a message sent after it, and a send is
accepted again (the Redis breaker opens for at most 5 s and PINGs before it lets a call
through)."""
DRAIN_BOUND_S = 20.0


async def _send_until(producer: Producer, stop: asyncio.Event) -> None:
    """One sender: a message at a time, ~10 per second, until ``stop`` (bounded by it)."""
    while not stop.is_set():
        await producer.send_batch(1)
        await asyncio.sleep(0.1)


async def test_redis_restarted_after_3s_worker_and_senders_resume_within_bound(
    redis_servers: RedisServers, worker_processes: WorkerProcesses
) -> None:
    server = await redis_servers.start(aof=True)
    prefix = unique_prefix("faults")
    worker = worker_processes.start(
        WorkerConfig(
            redis_url=server.url,
            prefix=prefix,
            agent=str(AGENT),
            name="w1",
            handler_s=0.02,
            concurrency=8,
            visibility_s=5.0,  # a lease whose ack was lost at the kill returns within 5 s
        )
    )
    await worker.wait_ready()
    settings = CoordinationSettings(redis_url=server.url, key_prefix=prefix)
    client = settings.redis_client()
    stop = asyncio.Event()
    producer = Producer(settings.build_coordinator(client), [AGENT], tag="restart")
    senders = [asyncio.create_task(_send_until(producer, stop)) for _ in range(SENDERS)]
    try:
        started = await wait_until(
            lambda: len(read_ledger(worker_processes.ledger_dir)) >= 50, limit_s=30
        )
        assert started is not None, f"the worker did not get going:\n{worker.log_tail()}"
        server.kill9()
        killed_at = time.time()
        await asyncio.sleep(OUTAGE_S)
        await server.start()  # same port, same append-only file; returns once it answers
        answered_at = time.time()

        def sent_after_restart() -> bool:
            return any(t > answered_at for t in producer.sent_at.values())

        await wait_until(sent_after_restart, limit_s=RECOVERY_BOUND_S + 1.0)
        await asyncio.sleep(1.0)  # a little traffic after the recovery
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*senders, return_exceptions=True), 30)
        await client.aclose()

    all_handled = partial(handled_all, producer.delivered, worker_processes.ledger_dir)

    await wait_until(all_handled, limit_s=DRAIN_BOUND_S, interval_s=0.1)
    records = read_ledger(worker_processes.ledger_dir)
    sent_after = sorted(t for m, t in producer.sent_at.items() if t > answered_at)
    handled_after = [
        h.t
        for h in records
        if h.t > answered_at and h.message_id in sent_after_ids(producer, answered_at)
    ]
    worker_s = handled_after[0] - answered_at if handled_after else float("inf")
    sender_s = sent_after[0] - answered_at if sent_after else float("inf")
    result = account(producer.delivered, records, faulted=lambda h: h.t <= killed_at)
    print(
        f"\nscenario 4b (restart after {OUTAGE_S:g}s): delivered={result.delivered} "
        f"handled={result.handled} refused={len(producer.refused)} "
        f"worker handled a new message {worker_s:.2f}s after Redis answered, "
        f"sends accepted again after {sender_s:.2f}s, redelivered={result.redeliveries}"
    )
    assert sender_s <= RECOVERY_BOUND_S, f"sends refused for {sender_s:.2f}s after the restart"
    assert worker_s <= RECOVERY_BOUND_S, (
        f"the worker handled nothing new for {worker_s:.2f}s after the restart:\n"
        f"{worker.log_tail()}"
    )
    result.assert_ok()
    assert all_handled(), f"not drained within {DRAIN_BOUND_S}s of the restart"
    checker = RedisMessageCoordinator(server.client(), key_prefix=prefix, guard=PassthroughGuard())
    # A lease whose ack was lost at the kill returns when it expires (5 s after it began).
    [stats] = await settled_queues(checker, [AGENT], limit_s=15)
    assert (stats.unsettled, stats.dead) == (0, 0), stats


def sent_after_ids(producer: Producer, since: float) -> set[str]:
    """Ids of the messages whose send was accepted after ``since``."""
    return {m for m, t in producer.sent_at.items() if t > since}
