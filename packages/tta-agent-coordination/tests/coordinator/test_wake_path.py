"""The wake-up path of a blocking receive: one script call per message at low load (issue 20).

A worker waits on its own queue and its type queue. When a message arrives, only the
queue that got it runs its receive script; the next receive waits on what the last one
learned (``redis/parked.py``) instead of running every script again; and the shared read
is re-armed when the worker waits again, with no ``CLIENT UNBLOCK``. What no stream
signals (a lease shortened here or elsewhere) is still picked up. Every test runs on
FakeRedis and on the real Redis.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tta_agent_coordination.redis import parked, receiving
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.redis.scripts import queue_receive
from tta_agent_coordination.redis.stream_waiter import StreamWaiter

from .conftest import RECIPIENT, SENDER, make_message

TYPE_QUEUE = RECIPIENT.type_queue


@pytest.fixture
def receive_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The queue (``QueueKeys.agent_id``) of every receive script call, in order."""
    calls: list[str] = []
    real = queue_receive.call

    def counting(queue: Any, **kwargs: Any) -> Any:
        calls.append(str(queue.agent_id))
        return real(queue, **kwargs)

    monkeypatch.setattr(queue_receive, "call", counting)
    return calls


async def _waiting(coordinator: RedisMessageCoordinator, waiters: int = 1) -> None:
    while coordinator.stream_waiter.stats.waiters < waiters:  # noqa: ASYNC110 - no event
        await asyncio.sleep(0.005)


async def _receive(coordinator: RedisMessageCoordinator, block: float = 5.0) -> Any:
    return await coordinator.receive_batch(
        RECIPIENT, 8, visibility_timeout=30, block=block, also=[TYPE_QUEUE]
    )


async def test_a_wake_up_runs_only_the_script_of_the_queue_that_got_a_message(
    coordinator, receive_calls
):
    task = asyncio.create_task(_receive(coordinator))
    await _waiting(coordinator)
    assert receive_calls == [str(RECIPIENT), str(TYPE_QUEUE)]
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    batch = await asyncio.wait_for(task, 5)
    assert [r.message.message_id for r in batch] == ["msg-000001"]
    # One script after the wake-up: the type queue had nothing new.
    assert receive_calls == [str(RECIPIENT), str(TYPE_QUEUE), str(RECIPIENT)]

    receive_calls.clear()
    task = asyncio.create_task(_receive(coordinator))
    await _waiting(coordinator)
    # Waits on what the last receive saw, without running either script first.
    assert receive_calls == []
    await coordinator.send_message(SENDER, TYPE_QUEUE, make_message(2, recipient=TYPE_QUEUE))
    batch = await asyncio.wait_for(task, 5)
    assert [r.message.message_id for r in batch] == ["msg-000002"]
    assert receive_calls == [str(TYPE_QUEUE)]


async def test_messages_sent_between_two_receives_are_not_missed(coordinator, receive_calls):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    first = await _receive(coordinator)
    assert [r.message.message_id for r in first] == ["msg-000001"]
    # Sent while nobody waits: the next receive starts from the parked view and must
    # still see them (their ids are newer than the ones it waits after).
    await coordinator.send_message(SENDER, RECIPIENT, make_message(2))
    await coordinator.send_message(SENDER, TYPE_QUEUE, make_message(3, recipient=TYPE_QUEUE))
    got: list[str] = []
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        got += [r.message.message_id for r in await _receive(coordinator, block=1.0)]
    assert sorted(got) == ["msg-000002", "msg-000003"]


async def test_a_lease_that_expires_elsewhere_is_picked_up_after_the_trust_period(
    coordination_redis, key_prefix, coordinator
):
    other = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    try:
        await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
        (mine,) = await _receive(coordinator)  # parks a view: next wake-up in ~30 s
        await coordinator.send_message(SENDER, RECIPIENT, make_message(2))
        theirs = await other.receive(RECIPIENT, visibility_timeout=0.2)
        assert theirs is not None
        assert theirs.message.message_id == "msg-000002"
        assert await coordinator.ack(RECIPIENT, mine.token)
        # No stream signals their lease running out; the parked view is trusted for
        # PARKED_TRUST_S only, then the script runs and hands the message over.
        started = time.monotonic()
        batch = await _receive(coordinator, block=parked.PARKED_TRUST_S + 4)
        assert [r.message.message_id for r in batch] == ["msg-000002"]
        assert batch[0].attempts == 2
        assert time.monotonic() - started < parked.PARKED_TRUST_S + 3
    finally:
        await other.aclose()


async def test_shortening_a_lease_here_drops_the_parked_views(
    coordinator, monkeypatch: pytest.MonkeyPatch
):
    # Trusted far longer than the receive below blocks: only forgetting them helps.
    monkeypatch.setattr(parked, "PARKED_TRUST_S", 60.0)
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    (mine,) = await _receive(coordinator)
    assert await coordinator.extend_lease(RECIPIENT, mine.token, 0.1)
    batch = await _receive(coordinator, block=3.0)
    assert [r.message.message_id for r in batch] == ["msg-000001"]
    assert batch[0].attempts == 2


async def test_waiting_again_after_each_message_needs_no_kick(
    coordinator, monkeypatch: pytest.MonkeyPatch
):
    kicks: list[int] = []
    real = StreamWaiter._kick_soon

    def counting(self: StreamWaiter, reader: Any) -> None:
        kicks.append(1)
        real(self, reader)

    monkeypatch.setattr(StreamWaiter, "_kick_soon", counting)
    task = asyncio.create_task(_receive(coordinator))
    await _waiting(coordinator)
    kicks.clear()  # joining the first time may re-arm the read
    for n in range(10):
        await coordinator.send_message(SENDER, RECIPIENT, make_message(n))
        batch = await asyncio.wait_for(task, 5)
        assert [r.message.message_id for r in batch] == [f"msg-{n:06d}"]
        assert await coordinator.ack(RECIPIENT, batch[0].token)
        task = asyncio.create_task(_receive(coordinator))
        await _waiting(coordinator)
    assert kicks == []
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_an_interrupt_ends_the_wait_and_its_watch_goes_after_the_linger(coordinator):
    stop = asyncio.Event()
    task = asyncio.create_task(
        coordinator.receive_batch(
            RECIPIENT, 8, visibility_timeout=30, block=30, also=[TYPE_QUEUE], interrupt=stop
        )
    )
    await _waiting(coordinator)
    started = time.monotonic()
    stop.set()
    assert await asyncio.wait_for(task, 5) == []
    assert time.monotonic() - started < 2
    # A wait that ends without its event set leaves the event's task for linger_s only.
    other = asyncio.Event()
    await coordinator.receive_batch(RECIPIENT, 1, visibility_timeout=30, block=0.1, interrupt=other)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _interrupt_tasks():  # noqa: ASYNC110 - no event
        await asyncio.sleep(0.05)
    assert _interrupt_tasks() == []


def _interrupt_tasks() -> list[asyncio.Task[Any]]:
    return [
        t for t in asyncio.all_tasks() if t.get_name() == "stream-waiter-interrupt" and not t.done()
    ]


async def test_parked_views_of_queues_nobody_receives_from_are_swept(
    coordinator, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(receiving, "_PARKED_SWEEP_AT", 4)
    agents = [RECIPIENT.__class__("world_builder", f"sweep{n}") for n in range(8)]
    for agent in agents:
        await coordinator.send_message(SENDER, agent, make_message(recipient=agent))
        [received] = await coordinator.receive_batch(agent, 8, visibility_timeout=30, block=1)
        assert received.message.recipient == agent
    receiver = coordinator._receiver  # pyright: ignore[reportPrivateUsage]
    parked_now = receiver._parked  # pyright: ignore[reportPrivateUsage]
    assert len(parked_now) == 8  # all still fresh: nothing to sweep
    # Once they are stale, the next park sweeps them all but its own.
    monkeypatch.setattr(parked, "PARKED_TRUST_S", 0.0)
    await coordinator.send_message(SENDER, agents[0], make_message(1, recipient=agents[0]))
    await coordinator.receive_batch(agents[0], 8, visibility_timeout=30, block=1)
    assert list(receiver._parked) == [(agents[0],)]  # pyright: ignore[reportPrivateUsage]
