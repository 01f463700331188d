"""Scenario 7: a registered owner is frozen past its TTL, another process takes over.

Worker process A owns agent ``fsplit:w1`` (heartbeat TTL 2 s, so a heartbeat every
0.67 s) and consumes a steady stream. A is frozen with SIGSTOP; its registration expires;
process B registers the same agent id (which hands A's leased messages back to the queue)
and consumes. Then A is resumed. Required (issue 23 item 5): the moment A's registry
learns that its registration was replaced, A stops leasing new messages, at most one
heartbeat interval after it resumes (plus ``SCHEDULING_SLACK_S`` for a loaded machine):
no split brain. Nothing reported delivered is lost; a message handled by both is one A
had leased before it froze.
"""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from tta_agent_coordination import AgentId, RedisMessageCoordinator
from tta_agent_coordination.resilience import PassthroughGuard
from tta_agent_coordination.testing import unique_prefix

from .ledger import account, handled_all, read_ledger
from .processes import WorkerConfig, WorkerProcesses
from .producer import Producer
from .servers import RedisServers
from .waiting import settled_queues, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.real_redis, pytest.mark.slow]

AGENT = AgentId("fsplit", "w1")
HEARTBEAT_TTL_S = 2.0
HEARTBEAT_INTERVAL_S = HEARTBEAT_TTL_S / 3
"""The registry's default interval (a third of the TTL)."""
SCHEDULING_SLACK_S = 0.5
"""A resumed process needs a moment to run its event loop again (loaded 2-core CI)."""
SPLIT_BRAIN_BOUND_S = HEARTBEAT_INTERVAL_S + SCHEDULING_SLACK_S
"""SIGCONT -> the old owner's last handler start."""
AFTER_THAW_S = 4.0
"""How long the stream keeps flowing after the old owner resumes (before fencing it kept
leasing until its maintenance loop noticed, up to 15 s: 273 messages in these 4 s)."""


async def _produce(producer: Producer, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await producer.send_batch(5)
        await asyncio.sleep(0.05)


async def test_frozen_owner_replaced_stops_leasing_within_one_heartbeat(
    redis_servers: RedisServers, worker_processes: WorkerProcesses
) -> None:
    server = await redis_servers.start()
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

    old = worker_processes.start(config("old"))
    await old.wait_ready()
    producer = Producer(
        RedisMessageCoordinator(server.client(), key_prefix=prefix, guard=PassthroughGuard()),
        [AGENT],
        tag="split",
    )
    stop = asyncio.Event()
    producing = asyncio.create_task(_produce(producer, stop))
    try:
        busy = await wait_until(
            lambda: len(read_ledger(worker_processes.ledger_dir)) >= 30, limit_s=30
        )
        assert busy is not None, f"the old owner did not get going:\n{old.log_tail()}"
        frozen_at = old.freeze()
        new = worker_processes.start(config("new", register_wait_s=20.0))
        took_over_at = await new.wait_ready()
        await asyncio.sleep(0.5)  # the new owner consumes alone for a moment
        thawed_at = old.thaw()
        await asyncio.sleep(AFTER_THAW_S)
    finally:
        stop.set()
        await asyncio.wait_for(producing, 30)

    all_handled = partial(handled_all, producer.delivered, worker_processes.ledger_dir)

    drained = await wait_until(all_handled, limit_s=30, interval_s=0.2)
    records = read_ledger(worker_processes.ledger_dir)
    old_after = [h for h in records if h.worker == "old" and h.t > thawed_at]
    window_s = max((h.t for h in old_after), default=thawed_at) - thawed_at
    result = account(producer.delivered, records, faulted=lambda h: h.worker == "old")
    print(
        f"\nscenario 7: takeover {took_over_at - frozen_at:.2f}s after the freeze; the old "
        f"owner handled {len(old_after)} messages after SIGCONT, the last "
        f"{window_s:.2f}s after it; redelivered={result.redeliveries}"
    )
    assert window_s <= SPLIT_BRAIN_BOUND_S, (
        f"split brain: the old owner still handled messages {window_s:.2f}s after it resumed "
        f"({len(old_after)} after SIGCONT)"
    )
    result.assert_ok()
    assert drained is not None, "not drained in time"
    checker = RedisMessageCoordinator(server.client(), key_prefix=prefix, guard=PassthroughGuard())
    [stats] = await settled_queues(checker, [AGENT])
    assert (stats.unsettled, stats.dead) == (0, 0), stats
