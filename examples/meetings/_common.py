"""What every meeting example shares: a Redis (FakeRedis unless told), a messaging."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from tta_agent_coordination import AgentMessaging, RedisMessageCoordinator
from tta_agent_coordination.observability.logging import configure_logging


@asynccontextmanager
async def messaging_on_redis(**options: object) -> AsyncIterator[AgentMessaging]:
    """An ``AgentMessaging`` (not started) on ``TTA_COORD_REDIS_URL`` or a FakeRedis.

    Its keys are deleted afterwards.
    """
    configure_logging("CRITICAL")  # the examples print their own story
    url = os.environ.get("TTA_COORD_REDIS_URL")
    if url:
        client: aioredis.Redis = aioredis.Redis.from_url(url)
    else:
        from tta_agent_coordination.testing import fake_redis

        client = fake_redis()
    prefix = f"example-{uuid.uuid4().hex[:8]}"
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    try:
        yield AgentMessaging(coordinator, **options)  # type: ignore[arg-type]
    finally:
        await coordinator.aclose()
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()
