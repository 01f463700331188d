import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tta_agent_coordination.models import AgentId, AgentMessage, MessagePriority, MessageType
from tta_agent_coordination.observability.metrics import InMemoryMessageMetrics
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

SENDER = AgentId("input_processor")
RECIPIENT = AgentId("world_builder", "w1")


def make_message(
    n: int = 0,
    *,
    priority: MessagePriority = MessagePriority.NORMAL,
    recipient: AgentId = RECIPIENT,
    message_id: str | None = None,
    **extra,
) -> AgentMessage:
    return AgentMessage(
        message_id=message_id or f"msg-{n:06d}",
        sender=SENDER,
        recipient=recipient,
        message_type=MessageType.REQUEST,
        payload={"n": n},
        priority=priority,
        **extra,
    )


@pytest.fixture
def metrics() -> InMemoryMessageMetrics:
    return InMemoryMessageMetrics()


@pytest.fixture
async def coordinator(
    coordination_redis, key_prefix, metrics
) -> AsyncIterator[RedisMessageCoordinator]:
    coord = RedisMessageCoordinator(
        coordination_redis,
        key_prefix=key_prefix,
        backoff_base=0.2,
        backoff_factor=2.0,
        backoff_max=1.0,
        metrics=metrics,
    )
    yield coord
    await coord.aclose()


async def waiter_quiet(waiter: Any) -> None:
    """Wait (bounded) until a ``StreamWaiter``'s reads cover every stream and no kick runs.

    After many waiters joined, their kicks re-arm the shared read a few times; a test
    measuring idle CPU starts after that.
    """
    readers = waiter._readers
    for _ in range(300):
        kicks = [
            t for t in asyncio.all_tasks() if t.get_name() == "stream-waiter-kick" and not t.done()
        ]
        armed = all(
            r.blocked and all(w.armed is not None for w in r.watches.values()) for r in readers
        )
        if armed and not kicks:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the shared read never covered every stream")
