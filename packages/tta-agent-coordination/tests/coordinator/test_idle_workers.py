"""1,000 idle ``AgentWorker``s on one coordinator wait on one connection (issue 23 item 9).

Each worker's fetch loop waits through the coordinator's shared ``StreamWaiter``, so
waiting holds no connection per worker, and at the default ``poll_interval`` an idle
worker parks in one long read (30 s) that its stop ends at once: it runs its receive
scripts (its own queue and its type queue) once per park, not once a second.
``scripts/bench_idle.py`` measures the cost over a longer window.
"""

import asyncio
import time
from typing import Any

import pytest

from tta_agent_coordination.models import AgentId, MessageType
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.runtime.context import MessageContext
from tta_agent_coordination.runtime.worker import AgentWorker

from .conftest import SENDER, make_message

pytestmark = pytest.mark.slow

WORKERS = 1_000


async def test_1000_idle_workers_share_one_connection_and_cost_no_cpu(
    coordination_redis, key_prefix
):
    coordinator = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    handled = asyncio.Event()

    async def handle(ctx: MessageContext) -> None:
        handled.set()

    workers = [
        AgentWorker(
            coordinator,
            None,
            AgentId("idle", f"w{i}"),
            maintenance_interval=3600,
        )
        for i in range(WORKERS)
    ]
    for worker in workers:
        worker.add_handler(handle, MessageType.REQUEST)
    pool: Any = coordination_redis.connection_pool
    try:
        # In chunks: a thousand first receives at once would need a thousand connections
        # of the test client's pool (1,000) at the same moment, the reader one more.
        for i in range(0, WORKERS, 100):
            await asyncio.gather(*(w.start() for w in workers[i : i + 100]))
        # Every first receive finds its queue empty and waits (bounded: a loaded CI
        # machine runs a thousand first receives slower than a laptop).
        for _ in range(300):
            if coordinator.stream_waiter.stats.waiters == WORKERS:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)  # the last joiners' kicks re-armed the read
        stats = coordinator.stream_waiter.stats
        assert stats.waiters == WORKERS
        # 4,004 streams (each worker's own three ready streams and wake stream, the type
        # queue's four shared by all): one read on a standalone server
        # (DEFAULT_MAX_KEYS_PER_READ), so one connection
        assert stats.streams == 4 * WORKERS + 4
        assert stats.readers == 1
        created = _created(pool)
        in_use: list[int] = []
        cpu, wall = time.process_time(), time.monotonic()
        for _ in range(30):  # longer than the default poll_interval (1 s): no re-polls
            await asyncio.sleep(0.1)
            in_use.append(len(pool._in_use_connections))
        share = (time.process_time() - cpu) / (time.monotonic() - wall)
        assert max(in_use) <= 1, f"connections in use while idle: {in_use}"
        assert _created(pool) == created, "idle workers opened connections"
        assert share < 0.05, f"1,000 idle workers used {share:.1%} of a core"
        target = workers[WORKERS // 2].agent_id
        started = time.monotonic()
        await coordinator.send_message(SENDER, target, make_message(1, recipient=target))
        await asyncio.wait_for(handled.wait(), 5)
        assert time.monotonic() - started < 1
        # A stop ends each parked read at once (no waiting out the 30 s park).
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(w.stop() for w in workers)), 20)
        assert time.monotonic() - started < 20
        assert coordinator.stream_waiter.stats.waiters == 0
    finally:
        for worker in workers:
            worker.request_stop("test over")
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        await coordinator.aclose()


def _created(pool: Any) -> int:
    """Connections the pool holds, idle or in use (it closes none while it runs)."""
    return len(pool._available_connections) + len(pool._in_use_connections)
