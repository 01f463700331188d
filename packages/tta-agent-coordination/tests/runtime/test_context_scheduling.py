"""Handlers send later: ``MessageContext.send``/``publish`` with ``delay_s``/``not_before``.

They pass the schedule to the coordinator's scheduled send (docs/concepts.md, "Sending
later"); a back-end whose ``send_message``/``publish_event`` cannot schedule is refused
with ``NotImplementedError`` rather than sending at once.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    MessageContext,
    MessageType,
    RedisMessageCoordinator,
)
from tta_agent_coordination.errors import MessageValidationError
from tta_agent_coordination.interfaces import MessageCoordinator
from tta_agent_coordination.models import MessagePriority

from .conftest import CLIENT, SERVER, eventually
from .test_backend_interfaces import ListCoordinator

LATER = AgentId("later", "l1")


def event(n: int) -> AgentMessage:
    return AgentMessage(
        sender=CLIENT, recipient=SERVER, message_type=MessageType.EVENT, payload={"n": n}
    )


async def context_for(coordinator: MessageCoordinator) -> MessageContext[Any]:
    """A handler's context for a message delivered to ``SERVER``."""
    assert (await coordinator.send_message(CLIENT, SERVER, event(1))).delivered
    received = await coordinator.receive(SERVER, visibility_timeout=30)
    assert received is not None
    return MessageContext(coordinator, SERVER, received, received.message.payload)


async def test_send_with_delay_s_is_not_receivable_before_it_is_due(coordinator):
    ctx = await context_for(coordinator)
    result = await ctx.send(LATER, {"retry": 1}, delay_s=0.3, priority=MessagePriority.HIGH)
    assert result.delivered
    assert result.scheduled_for is not None
    stats = await coordinator.queue_stats(LATER)
    assert (stats.delayed, stats.unsettled) == (1, 1)
    assert await coordinator.receive(LATER) is None  # not before it is due
    got = await coordinator.receive_batch(LATER, 1, visibility_timeout=5, block=10)
    assert [g.message.message_id for g in got] == [result.message_id]
    (delivered,) = got
    assert delivered.message.payload == {"retry": 1}
    assert delivered.message.priority is MessagePriority.HIGH
    # the schedule keeps the conversation: the handled message's correlation id
    assert delivered.message.correlation_id == ctx.message.message_id
    assert delivered.attempts == 1


async def test_send_with_not_before_waits_and_can_be_cancelled(coordinator):
    ctx = await context_for(coordinator)
    when = datetime.now(UTC) + timedelta(hours=1)
    result = await ctx.send(LATER, {"remind": True}, not_before=when)
    assert result.scheduled_for is not None
    assert abs((result.scheduled_for - when).total_seconds()) < 5
    assert (await coordinator.queue_stats(LATER)).delayed == 1
    assert await coordinator.cancel_scheduled(LATER, result.message_id)
    assert (await coordinator.queue_stats(LATER)).unsettled == 0


async def test_send_without_a_schedule_is_ready_at_once(coordinator):
    ctx = await context_for(coordinator)
    result = await ctx.send(LATER, {"now": True})
    assert result.scheduled_for is None
    assert await coordinator.receive(LATER) is not None


@pytest.mark.parametrize(
    "schedule",
    [
        {"delay_s": 1, "not_before": datetime.now(UTC)},
        {"delay_s": -1},
        {"not_before": datetime(2030, 1, 1)},  # naive
    ],
    ids=["both", "negative", "naive"],
)
async def test_a_bad_schedule_raises_and_sends_nothing(coordinator, schedule):
    ctx = await context_for(coordinator)
    with pytest.raises(MessageValidationError):
        await ctx.send(LATER, {"x": 1}, **schedule)
    assert (await coordinator.queue_stats(LATER)).unsettled == 0


async def test_publish_with_a_delay_schedules_every_subscribers_copy(coordinator):
    await coordinator.subscribe(LATER, [MessageType.EVENT])
    await coordinator.subscribe(CLIENT, [MessageType.EVENT])
    ctx = await context_for(coordinator)
    results = await ctx.publish({"tick": 1}, delay_s=60)
    assert sorted(str(r.recipient) for r in results) == sorted([str(LATER), str(CLIENT)])
    assert all(r.scheduled_for is not None for r in results)
    for agent in (LATER, CLIENT):
        assert (await coordinator.queue_stats(agent)).delayed == 1


async def test_a_handler_schedules_a_follow_up_from_a_worker(coordinator, make_worker):
    worker = make_worker(SERVER)
    scheduled: list[str] = []

    @worker.on_event()
    async def follow_up(ctx: MessageContext[Any]) -> None:
        result = await ctx.send(LATER, {"after": ctx.payload["n"]}, delay_s=0.2)
        scheduled.append(result.message_id)

    assert (await coordinator.send_message(CLIENT, SERVER, event(7))).delivered
    async with worker:
        await eventually(lambda: worker.stats.succeeded == 1)
    got = await coordinator.receive_batch(LATER, 1, visibility_timeout=5, block=10)
    assert [g.message.message_id for g in got] == scheduled
    assert got[0].message.payload == {"after": 7}


async def test_a_backend_that_cannot_schedule_is_refused_not_sent_at_once():
    backend = ListCoordinator()
    ctx = await context_for(backend)
    with pytest.raises(NotImplementedError, match=r"ListCoordinator.*scheduled send_message"):
        await ctx.send(LATER, {"x": 1}, delay_s=1)
    with pytest.raises(NotImplementedError, match="scheduled publish_event"):
        await ctx.publish({"x": 1}, not_before=datetime.now(UTC))
    assert LATER not in backend.ready
    assert (await ctx.send(LATER, {"x": 1})).delivered  # without a schedule it sends


class Forwarding(RedisMessageCoordinator):
    """A wrapper that forwards keywords (``**kwargs``), as tracing proxies do."""

    seen: list[dict[str, Any]]

    async def send_message(self, *args: Any, **kwargs: Any) -> Any:
        self.seen.append(kwargs)
        return await super().send_message(*args, **kwargs)


async def test_a_forwarding_backend_passes_the_schedule_on(coordination_redis, key_prefix):
    coord = Forwarding(coordination_redis, key_prefix=key_prefix)
    coord.seen = []
    try:
        ctx = await context_for(coord)
        result = await ctx.send(LATER, {"x": 1}, delay_s=30)
        assert result.scheduled_for is not None
        assert coord.seen[-1] == {"delay_s": 30, "not_before": None}
    finally:
        await coord.aclose()
