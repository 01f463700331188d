"""Fixtures of the compat behaviour tests: compat objects on FakeRedis and real Redis.

``coordination_redis`` and ``key_prefix`` come from the core's pytest plugin (the root
``conftest.py`` loads it): every test using them runs on both back-ends, under a key
prefix of its own that is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tta_agents.compat import (
    AgentId,
    AgentMessage,
    MessagePriority,
    MessageType,
    RedisMessageCoordinator,
)

Check = Callable[[], Awaitable[bool]] | Callable[[], bool]


async def wait_until(check: Check, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Poll ``check()`` until it is true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """``await eventually(check, timeout=10)``: a bounded wait for a condition."""
    return wait_until


def build_message(
    recipient: AgentId,
    payload: dict[str, Any] | None = None,
    priority: MessagePriority = MessagePriority.NORMAL,
    sender: AgentId | None = None,
    message_type: MessageType = MessageType.REQUEST,
) -> AgentMessage:
    """A message as the original tests built them (a fresh id)."""
    return AgentMessage(
        message_id=f"m-{uuid.uuid4().hex}",
        sender=sender if sender is not None else AgentId("input_processor", "sender"),
        recipient=recipient,
        message_type=message_type,
        payload=payload if payload is not None else {},
        priority=priority,
    )


@pytest.fixture
def make_message() -> Callable[..., AgentMessage]:
    """``make_message(recipient, payload=None, priority=NORMAL, sender=None)``."""
    return build_message


@pytest.fixture
async def coordinator(coordination_redis: Any, key_prefix: str) -> AsyncIterator[Any]:
    """The compat coordinator on the test's Redis and prefix."""
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    try:
        yield coord
    finally:
        await coord.aclose()
