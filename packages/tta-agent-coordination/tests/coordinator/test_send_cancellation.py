"""A cancellation that lands while a send completes is delivered, never swallowed.

redis-py (Python 3.11's ``wait_for`` race) can finish a command and drop the
cancellation that arrived meanwhile: the send returns normally and the cancelled task runs
on. The sender delivers it once the send is done; the message stays enqueued.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from tta_agent_coordination.redis import sending
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

from .conftest import RECIPIENT, SENDER, make_message


async def test_a_cancellation_swallowed_by_the_client_is_raised_after_the_send(
    coordinator: RedisMessageCoordinator, monkeypatch: pytest.MonkeyPatch
):
    enqueue = sending.Sender._enqueue  # pyright: ignore[reportPrivateUsage]
    reached = asyncio.Event()

    async def swallowing(self: Any, *args: Any) -> Any:
        result = await enqueue(self, *args)  # the command completes...
        reached.set()
        # ...the cancellation lands here, where the client drops it (redis-py's race).
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        return result

    monkeypatch.setattr(sending.Sender, "_enqueue", swallowing)
    task = asyncio.create_task(coordinator.send_message(SENDER, RECIPIENT, make_message(1)))
    await asyncio.wait_for(reached.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    got = await coordinator.receive(RECIPIENT)  # enqueued all the same
    assert got is not None


async def test_a_send_that_is_not_cancelled_returns_its_results(
    coordinator: RedisMessageCoordinator,
):
    result = await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    assert result.delivered
