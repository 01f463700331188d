"""Seeding and reading Redis state with the library's own API, for the CLI tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    FailureType,
    MessageType,
    RedisAgentRegistry,
    RedisMessageCoordinator,
)
from tta_agent_coordination.models import QueueStats
from tta_agent_coordination.testing import real_redis

T = TypeVar("T")

SENDER = AgentId("tester", "t1")


def with_coordinator(
    url: str, prefix: str, fn: Callable[[RedisMessageCoordinator], Awaitable[T]], **config: Any
) -> T:
    async def main() -> T:
        client = await real_redis(url)
        coord = RedisMessageCoordinator(client, key_prefix=prefix, **config)
        try:
            return await fn(coord)
        finally:
            await coord.aclose()
            await client.aclose()

    return asyncio.run(main())


def send(url: str, prefix: str, agent: AgentId, count: int, **config: Any) -> list[str]:
    async def fn(coord: RedisMessageCoordinator) -> list[str]:
        ids = []
        for n in range(count):
            msg = AgentMessage(
                sender=SENDER, recipient=agent, message_type=MessageType.REQUEST, payload={"n": n}
            )
            result = await coord.send_message(SENDER, agent, msg)
            assert result.delivered
            ids.append(msg.message_id)
        return ids

    return with_coordinator(url, prefix, fn, **config)


def dead_letter(url: str, prefix: str, agent: AgentId, count: int, **config: Any) -> list[str]:
    """Send ``count`` messages and fail each permanently, so they land in the DLQ."""
    ids = send(url, prefix, agent, count, **config)

    async def fn(coord: RedisMessageCoordinator) -> None:
        for _ in range(count):
            item = await coord.receive(agent, visibility_timeout=30)
            assert item is not None
            assert await coord.nack(agent, item.token, FailureType.PERMANENT, "bad [input]")

    with_coordinator(url, prefix, fn, **config)
    return ids


def stats(url: str, prefix: str, agent: AgentId) -> QueueStats:
    return with_coordinator(url, prefix, lambda coord: coord.queue_stats(agent))


def register(url: str, prefix: str, agents: list[AgentId]) -> None:
    async def main() -> None:
        client = await real_redis(url)
        registry = RedisAgentRegistry(client, key_prefix=prefix)
        try:
            for agent in agents:
                await registry.register_id(agent, name=f"{agent.type} agent")
        finally:
            await registry.aclose(deregister=False)
            await client.aclose()

    asyncio.run(main())


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of sample ``name`` with exactly ``labels`` in exposition ``text``, if any."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None
