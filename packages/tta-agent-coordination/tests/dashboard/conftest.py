"""Fixtures of the dashboard tests: sources over the test's Redis, an HTTP client, seeding."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import redis.asyncio as aioredis

from tta_agent_coordination.dashboard import DashboardSources, create_app
from tta_agent_coordination.models import AgentId, AgentMessage, FailureType, MessageType
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

TOKEN = "s3cret-token"
SENDER = AgentId("producer", "p1")

Client = Callable[..., Awaitable[httpx.AsyncClient]]


def message(recipient: AgentId, n: int, **kwargs) -> AgentMessage:
    return AgentMessage(
        message_id=f"{recipient.type}-{recipient.instance}-{n}",
        sender=SENDER,
        recipient=recipient,
        message_type=MessageType.REQUEST,
        payload={"n": n},
        **kwargs,
    )


async def send(coord: RedisMessageCoordinator, agent: AgentId, count: int, start: int = 0) -> None:
    for first in range(start, start + count, 500):
        batch = [message(agent, n) for n in range(first, min(first + 500, start + count))]
        results = await coord.send_many(batch)
        assert all(r.delivered for r in results)


async def dead_letter(
    coord: RedisMessageCoordinator, agent: AgentId, count: int, start: int = 0
) -> None:
    """``count`` messages sent to ``agent`` and nacked permanently into its dead letters."""
    await send(coord, agent, count, start)
    left = count
    while left:
        batch = await coord.receive_batch(agent, min(left, 500), visibility_timeout=60)
        assert batch
        for received in batch:
            assert await coord.nack(agent, received.token, FailureType.PERMANENT, "boom")
        left -= len(batch)


@pytest.fixture
async def sources(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> AsyncIterator[DashboardSources]:
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    registry = RedisAgentRegistry(coordination_redis, key_prefix=key_prefix)
    try:
        yield DashboardSources(coordination_redis, coord, registry)
    finally:
        await registry.aclose()
        await coord.aclose()


@pytest.fixture
async def client(sources: DashboardSources) -> AsyncIterator[Client]:
    made: list[httpx.AsyncClient] = []

    async def make(token: str | None = TOKEN, page_size: int = 50) -> httpx.AsyncClient:
        app = create_app(sources, token=token, page_size=page_size)
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dashboard"
        )
        made.append(http)
        return http

    try:
        yield make
    finally:
        await asyncio.gather(*(c.aclose() for c in made))
