"""Workers of one type share its type queue: ``AgentId(type)`` is "any live instance"."""

import asyncio
from typing import Any

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    MessageContext,
    MessagePriority,
    MessageType,
    PermanentError,
    RedisMessageCoordinator,
)
from tta_agent_coordination.interfaces import Ownership
from tta_agent_coordination.models import DeadLetter
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.runtime.fetching import FetchLoop, FetchSettings
from tta_agent_coordination.runtime.presence import AgentPresence

from .conftest import CLIENT, eventually

CALC = AgentId("calc")
W1 = AgentId("calc", "w1")
W2 = AgentId("calc", "w2")


def to(recipient: AgentId, n: int, **extra: Any) -> AgentMessage:
    return AgentMessage(
        sender=CLIENT,
        recipient=recipient,
        message_type=MessageType.EVENT,
        payload={"n": n},
        **extra,
    )


async def send(coordinator: RedisMessageCoordinator, *messages: AgentMessage) -> None:
    results = await coordinator.send_many(list(messages))
    assert all(r.delivered for r in results)


async def test_instances_compete_for_the_type_queue_and_handle_each_message_once(
    coordinator, make_worker
):
    handled: dict[int, list[AgentId]] = {}
    both_busy = asyncio.Event()
    busy: set[AgentId] = set()

    def worker_for(agent: AgentId):
        worker = make_worker(agent, concurrency=1, batch_size=1)

        @worker.on_event()
        async def handle(ctx: MessageContext[Any]) -> None:
            handled.setdefault(ctx.payload["n"], []).append(ctx.agent_id)
            busy.add(ctx.agent_id)
            if len(busy) == 2:
                both_busy.set()
            # The first message keeps its worker's only slot until the other instance
            # has one too: only competing consumption lets both run.
            await asyncio.wait_for(both_busy.wait(), 10)

        return worker

    one, two = worker_for(W1), worker_for(W2)
    await send(coordinator, *(to(CALC, n) for n in range(20)))
    async with one, two:
        await eventually(lambda: len(handled) == 20)
        await eventually(lambda: one.stats.succeeded + two.stats.succeeded == 20)
    assert all(len(by) == 1 for by in handled.values()), handled
    assert {by[0] for by in handled.values()} == {W1, W2}
    stats = await coordinator.queue_stats(CALC)
    assert (stats.unsettled, stats.dead) == (0, 0)


async def test_a_worker_takes_its_own_queue_before_the_type_queue(coordinator, make_worker):
    order: list[str] = []
    worker = make_worker(W1, concurrency=1, batch_size=1)

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        order.append(f"{ctx.received.queue}/{ctx.payload['n']}")

    await send(
        coordinator,
        to(CALC, 1),
        to(CALC, 2, priority=MessagePriority.HIGH),
        to(W1, 3, priority=MessagePriority.LOW),
        to(W1, 4),
    )
    async with worker:
        await eventually(lambda: worker.stats.succeeded == 4)
    assert order == ["calc:w1/4", "calc:w1/3", "calc/2", "calc/1"]


async def test_a_type_wide_worker_id_runs_as_the_default_instance(
    coordinator, registry, make_worker
):
    # Host code from before type queues: AgentWorker(AgentId("calc")) + send to it.
    worker = make_worker(CALC)
    got: list[AgentId] = []

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        got.append(ctx.agent_id)

    async with worker:
        assert worker.agent_id == AgentId("calc", "default")
        record = await registry.get(CALC)
        assert record is not None
        assert record.agent_id == AgentId("calc", "default")
        await send(coordinator, to(CALC, 1), to(AgentId("calc", "default"), 2))
        await eventually(lambda: worker.stats.succeeded == 2)
    assert got == [AgentId("calc", "default")] * 2


async def test_a_request_to_a_type_is_answered_by_the_instance_that_handled_it(
    coordinator, make_worker
):
    worker = make_worker(W2)

    @worker.on_request()
    async def double(ctx: MessageContext[Any]) -> dict[str, int]:
        return {"twice": 2 * ctx.payload["n"]}

    async with worker:
        reply = await coordinator.request(CLIENT, CALC, {"n": 21}, timeout=10)
    assert reply.payload == {"twice": 42}
    assert reply.sender == W2  # the reply says which instance handled it


async def test_failures_of_type_queue_messages_settle_on_the_type_queue(coordinator, make_worker):
    worker = make_worker(W1)
    attempts: dict[int, int] = {}

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        n = ctx.payload["n"]
        attempts[n] = attempts.get(n, 0) + 1
        if n == 1:
            raise PermanentError("never")
        if attempts[n] == 1:
            raise RuntimeError("once")

    await send(coordinator, to(CALC, 1), to(CALC, 2))
    async with worker:
        await eventually(lambda: worker.stats.succeeded == 1 and worker.stats.dead_lettered == 1)
    assert attempts == {1: 1, 2: 2}
    stats = await coordinator.queue_stats(CALC)
    assert (stats.unsettled, stats.dead) == (0, 1)
    [dead] = await coordinator.dead_letters(CALC)
    assert isinstance(dead, DeadLetter)
    assert dead.message.payload == {"n": 1}


async def test_a_long_handler_keeps_its_type_queue_lease(coordinator, make_worker):
    worker = make_worker(W1, visibility_timeout=0.3)
    runs = 0

    @worker.on_event()
    async def slow(ctx: MessageContext[Any]) -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(1.2)
        assert not ctx.lease_lost
        assert await ctx.extend_lease(1.0)

    await send(coordinator, to(CALC, 1))
    async with worker:
        await eventually(lambda: worker.stats.succeeded == 1)
    assert runs == 1
    assert worker.stats.lease_extensions >= 2
    assert worker.stats.leases_lost == 0


async def test_a_stop_ends_an_idle_workers_long_read_at_once(coordinator, make_worker):
    # poll_interval 60: the idle read blocks for 60 s unless the stop ends it.
    worker = make_worker(W1, registry=None, poll_interval=60.0, maintenance_interval=60.0)

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        return None

    await worker.start()
    await eventually(lambda: coordinator.stream_waiter.stats.waiters == 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(worker.stop(), 20)
    assert loop.time() - started < 20
    assert coordinator.stream_waiter.stats.waiters == 0


async def test_a_type_with_no_live_worker_keeps_its_messages_until_one_starts(
    coordinator, make_worker
):
    await send(coordinator, *(to(CALC, n) for n in range(3)))
    assert (await coordinator.queue_stats(CALC)).ready[MessagePriority.NORMAL] == 3
    worker = make_worker(W2)
    seen: list[int] = []

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        seen.append(ctx.payload["n"])

    async with worker:
        await eventually(lambda: len(seen) == 3)
    assert sorted(seen) == [0, 1, 2]


class _Stalled(AgentPresence):
    """A registration held for the first read, unverified once it returned (a stall)."""

    def __init__(self, coordinator: RedisMessageCoordinator) -> None:
        super().__init__(
            coordinator,
            None,
            W1,
            name="calc",
            capabilities=[],
            metadata={},
            takeover=False,
            subscriptions=[],
            log=get_logger(__name__),
        )
        self.checks = 0

    def ownership(self) -> Ownership:
        self.checks += 1
        return Ownership.HELD if self.checks == 1 else Ownership.UNVERIFIED


async def test_a_fenced_batch_from_the_type_queue_is_given_back_to_the_type_queue(coordinator):
    await send(coordinator, to(CALC, 1))
    stop = asyncio.Event()
    spawned: list[Any] = []
    presence = _Stalled(coordinator)
    fetch = FetchLoop(
        coordinator,
        W1,
        presence,
        FetchSettings(concurrency=1, batch_size=1, visibility_s=60.0, poll_s=0.05),
        deliveries={},
        spawn=spawned.append,
        stop_requested=stop,
        slot_free=asyncio.Event(),
        on_lost=stop.set,
        log=get_logger(__name__),
    )
    task = asyncio.create_task(fetch.run(lambda: None))
    try:
        # Checked before the read, after it (stalled: given back), then before the next.
        await eventually(lambda: presence.checks >= 3)
        # Leased for 60 s, but given back at once: another instance gets it now.
        again = await coordinator.receive_batch(W2, 1, also=[CALC], block=10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert spawned == []
    assert [(r.queue, r.attempts) for r in again] == [(CALC, 2)]
