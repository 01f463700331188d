"""What every meeting example shares: a Redis (FakeRedis unless told), a messaging."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tta_agent_coordination import AgentMessaging, RedisMessageCoordinator
from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.observability.logging import configure_logging
from tta_agent_coordination.settings import CoordinationSettings
from tta_agent_coordination.testing import delete_prefix, fake_redis


@asynccontextmanager
async def messaging_on_redis(**options: object) -> AsyncIterator[AgentMessaging]:
    """An ``AgentMessaging`` (not started) on ``TTA_COORD_REDIS_URL`` or a FakeRedis.

    Its keys are deleted afterwards.
    """
    configure_logging("CRITICAL")  # the examples print their own story
    url = os.environ.get("TTA_COORD_REDIS_URL")
    # Any form of URL: a single server, Sentinel, Cluster.
    client: RedisClient = (
        CoordinationSettings(redis_url=url).redis_client() if url else fake_redis()
    )
    prefix = f"example-{uuid.uuid4().hex[:8]}"
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    try:
        yield AgentMessaging(coordinator, **options)  # type: ignore[arg-type]
    finally:
        await coordinator.aclose()
        await delete_prefix(client, prefix)  # on every primary of a Cluster too
        await client.aclose()
