"""A worker's adaptive defaults: reads grow with a backlog, explicit limits fix them."""

import asyncio
from typing import Any

import pytest

from tta_agent_coordination import AgentMessage, MessageContext, MessageType
from tta_agent_coordination.runtime.adaptive import (
    DEFAULT_CONCURRENCY,
    MAX_ADAPTIVE_BATCH,
    HandlerSlots,
    ReadSizer,
)

from .conftest import CLIENT, SERVER, HeldHandlers, eventually


def _messages(n: int) -> list[AgentMessage]:
    return [
        AgentMessage(
            sender=CLIENT, recipient=SERVER, message_type=MessageType.EVENT, payload={"n": i}
        )
        for i in range(n)
    ]


def _spy_reads(coordinator: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(asked, leased) of every read the worker makes."""
    reads: list[tuple[int, int]] = []
    original = coordinator.receive_batch

    async def receive_batch(agent_id: Any, count: int, **kwargs: Any) -> Any:
        batch = await original(agent_id, count, **kwargs)
        reads.append((count, len(batch)))
        return batch

    monkeypatch.setattr(coordinator, "receive_batch", receive_batch)
    return reads


async def test_a_backlog_makes_default_reads_lease_more_than_the_first_batch(
    coordinator, make_worker, monkeypatch
):
    await coordinator.send_many(_messages(1_000))
    reads = _spy_reads(coordinator, monkeypatch)
    worker = make_worker()

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        return None

    async with worker:
        await eventually(lambda: worker.stats.succeeded == 1_000)
    assert reads[0][0] == DEFAULT_CONCURRENCY  # it starts where the old default was
    assert max(leased for _, leased in reads) > DEFAULT_CONCURRENCY
    assert max(asked for asked, _ in reads) <= MAX_ADAPTIVE_BATCH
    assert (await coordinator.queue_stats(SERVER)).unsettled == 0


@pytest.mark.parametrize("options", [{"concurrency": 8}, {"batch_size": 8}])
async def test_explicit_limits_disable_the_adaptation(
    coordinator, make_worker, monkeypatch, options
):
    await coordinator.send_many(_messages(300))
    reads = _spy_reads(coordinator, monkeypatch)
    worker = make_worker(**options)

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        return None

    async with worker:
        await eventually(lambda: worker.stats.succeeded == 300)
    assert max(asked for asked, _ in reads) == 8


async def test_slow_handlers_run_at_most_the_default_and_hold_few_waiting(coordinator, make_worker):
    """Slow handlers (an LLM call) run 8 at once; leased messages waiting stay bounded."""
    await coordinator.send_many(_messages(100))
    worker = make_worker(grace_period=5.0)
    held = HeldHandlers()

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        await held.hold()

    async with worker:
        await eventually(lambda: held.running == DEFAULT_CONCURRENCY)
        await asyncio.sleep(0.3)
        assert held.peak == DEFAULT_CONCURRENCY
        leased = (await coordinator.queue_stats(SERVER)).leased
        # The 8 running plus at most two reads' worth: reads stop growing once the
        # handlers are busy.
        assert DEFAULT_CONCURRENCY <= leased <= 3 * DEFAULT_CONCURRENCY
        held.release.set()
        await eventually(lambda: worker.stats.succeeded == 100)
    assert held.peak == DEFAULT_CONCURRENCY


async def test_a_stop_gives_back_leased_messages_that_never_started(coordinator, make_worker):
    await coordinator.send_many(_messages(40))
    worker = make_worker(grace_period=0.3, visibility_timeout=30.0)
    started = 0

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        nonlocal started
        started += 1
        await asyncio.sleep(60)

    await worker.start()
    await eventually(lambda: started == DEFAULT_CONCURRENCY)
    await eventually(lambda: worker.stats.in_flight > DEFAULT_CONCURRENCY)
    await worker.stop()
    assert started == DEFAULT_CONCURRENCY  # the waiting ones were not started late
    assert worker.stats.abandoned == DEFAULT_CONCURRENCY

    successor = make_worker(concurrency=40)
    seen = 0

    @successor.on_event()
    async def finish(ctx: MessageContext[Any]) -> None:
        nonlocal seen
        seen += 1

    async with successor:
        # The given-back ones come back at once, long before the 30 s visibility timeout.
        await eventually(lambda: seen >= 40 - DEFAULT_CONCURRENCY, timeout=5.0)


def test_the_read_sizer_grows_when_starved_and_shrinks_when_handlers_lag() -> None:
    sizer = ReadSizer(8, adaptive=True)
    sizer.observe(8, 8, waiting=0, free=8)
    assert sizer.batch == 16
    sizer.observe(16, 16, waiting=0, free=0)  # handlers busy: no growth
    assert sizer.batch == 16
    sizer.observe(16, 3, waiting=0, free=8)  # a short read: the backlog is gone
    assert sizer.batch == 16
    sizer.observe(16, 16, waiting=5, free=0)
    assert sizer.batch == 8
    for _ in range(20):
        sizer.observe(1, 1, waiting=1, free=0)
    assert sizer.batch == 1
    for _ in range(20):
        sizer.observe(sizer.batch, sizer.batch, waiting=0, free=1)
    assert sizer.batch == MAX_ADAPTIVE_BATCH
    fixed = ReadSizer(8)
    fixed.observe(8, 8, waiting=0, free=8)
    assert fixed.batch == 8


async def test_handler_slots_hand_over_in_order_and_close_releases_waiters() -> None:
    slots = HandlerSlots(1)
    assert await slots.acquire()
    second = asyncio.ensure_future(slots.acquire())
    third = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)
    assert slots.waiting == 2
    assert slots.free == 0
    slots.release()
    assert await second is True
    slots.close()
    assert await third is False
    assert await slots.acquire() is False


async def test_a_delivery_whose_lease_ran_out_while_waiting_is_not_run(coordinator):
    """A stall past the lease of a message queued for a slot: another consumer has it."""
    from tta_agent_coordination.observability.logging import get_logger
    from tta_agent_coordination.runtime.deliveries import Delivery, DeliveryRunner
    from tta_agent_coordination.runtime.handlers import HandlerSpec, HandlerTable
    from tta_agent_coordination.runtime.stats import WorkerStats

    ran: list[int] = []

    async def handle(ctx: MessageContext[Any]) -> None:
        ran.append(ctx.payload["n"])

    table = HandlerTable()
    table.add(HandlerSpec(fn=handle, message_type=None, kind=None))
    stats = WorkerStats()
    slots = HandlerSlots(1)
    runner = DeliveryRunner(
        coordinator, SERVER, table, None, stats, get_logger(__name__), slots=slots
    )
    await coordinator.send_many(_messages(2))
    first, second = await coordinator.receive_batch(SERVER, 2, visibility_timeout=30.0)
    await runner.run(Delivery(received=first, lease_until=float("inf")))
    assert ran == []
    assert stats.leases_lost == 1
    assert slots.free == 1  # the slot went back
    await runner.run(Delivery(received=second, lease_until=1e18))
    assert ran == [1]
    assert stats.succeeded == 1
