"""1,000 idle ``AgentWorker``s on one coordinator wait on a few connections (issue 23 item 9).

Each worker's fetch loop waits through the coordinator's shared ``StreamWaiter``, so
waiting holds no connection per worker. ``poll_interval`` is long here so that the
measurement window sees the waiting alone (a worker runs its receive script once per
``poll_interval``; ``scripts/bench_idle.py`` measures that cost per poll interval).
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


async def test_1000_idle_workers_share_a_few_connections_and_cost_no_cpu(
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
            poll_interval=30,
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
        await asyncio.sleep(1.0)  # every first receive found its queue empty and waits
        stats = coordinator.stream_waiter.stats
        assert stats.waiters == WORKERS
        assert stats.readers <= 3  # 3,000 ready streams, up to 1,024 per read
        in_use: list[int] = []
        cpu, wall = time.process_time(), time.monotonic()
        for _ in range(20):
            await asyncio.sleep(0.1)
            in_use.append(len(pool._in_use_connections))
        share = (time.process_time() - cpu) / (time.monotonic() - wall)
        assert max(in_use) <= 3, f"connections in use while idle: {in_use}"
        assert share < 0.05, f"1,000 idle workers used {share:.1%} of a core"
        target = workers[WORKERS // 2].agent_id
        started = time.monotonic()
        await coordinator.send_message(SENDER, target, make_message(1, recipient=target))
        await asyncio.wait_for(handled.wait(), 5)
        assert time.monotonic() - started < 1
    finally:
        for worker in workers:
            worker.request_stop("test over")
        # Closing the coordinator ends every pending wait at once (the workers would
        # otherwise notice the stop only after their 30 s poll).
        await coordinator.aclose()
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
