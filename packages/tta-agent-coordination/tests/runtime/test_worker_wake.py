"""A parked worker (default options: one 30 s blocking read) handles a retry or a
scheduled send when it falls due, not when its park ends.

The retry comes from the worker's own nack while its fetch loop is parked with free
slots; the scheduled send from another coordinator (as from another process). Both add
to the queue's delayed set, which the scripts signal on the queue's wake stream. Bounds
are generous: the bug they catch is a delay of the whole 30 s park.
"""

from __future__ import annotations

import asyncio
import time

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    AgentWorker,
    MessageType,
    RedisAgentRegistry,
    RedisMessageCoordinator,
)
from tta_agent_coordination.runtime.context import MessageContext

from .conftest import CLIENT, eventually

AGENT = AgentId("waker", "w1")
BOUND_S = 2.0


def event() -> AgentMessage:
    return AgentMessage(sender=CLIENT, recipient=AGENT, message_type=MessageType.EVENT)


async def test_a_transient_failure_is_retried_while_the_worker_is_parked(
    coordinator: RedisMessageCoordinator, registry: RedisAgentRegistry
):
    # The fixture's coordinator retries after 0.05 s.
    worker = AgentWorker(coordinator, registry, AGENT)
    calls: list[float] = []
    done = asyncio.Event()

    async def handle(ctx: MessageContext) -> None:
        calls.append(time.monotonic())
        if ctx.attempts == 1:
            raise RuntimeError("transient")
        done.set()

    worker.add_handler(handle, MessageType.EVENT)
    async with worker:
        await eventually(lambda: coordinator.stream_waiter.stats.waiters >= 1)
        await coordinator.send_message(CLIENT, AGENT, event())
        await asyncio.wait_for(done.wait(), 10)
    assert len(calls) == 2
    assert calls[1] - calls[0] < BOUND_S


async def test_a_scheduled_send_reaches_a_parked_worker_when_due(
    coordinator: RedisMessageCoordinator,
    registry: RedisAgentRegistry,
    coordination_redis,
    key_prefix,
):
    sender = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    worker = AgentWorker(coordinator, registry, AGENT)
    handled = asyncio.Event()

    async def handle(ctx: MessageContext) -> None:
        handled.set()

    worker.add_handler(handle, MessageType.EVENT)
    try:
        async with worker:
            await eventually(lambda: coordinator.stream_waiter.stats.waiters >= 1)
            started = time.monotonic()
            sent = await sender.send_message(CLIENT, AGENT, event(), delay_s=0.3)
            assert sent.scheduled_for is not None
            await asyncio.wait_for(handled.wait(), 10)
            assert time.monotonic() - started < BOUND_S
    finally:
        await sender.aclose()
