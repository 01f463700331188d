"""A minimal agent: one worker with one request handler, and a request sent to it.

Run it (``python examples/minimal_worker.py``) on an embedded FakeRedis, or on the Redis
named by ``TTA_COORD_REDIS_URL``; it exits 0 when the reply is right. ``make_worker`` is
also a factory for the CLI, which builds the coordinator and registry from its settings::

    tta-coord --redis-url redis://127.0.0.1:6379/0 worker examples.minimal_worker:make_worker
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel

from tta_agent_coordination import (
    AgentId,
    AgentWorker,
    MessageContext,
    RedisAgentRegistry,
    RedisMessageCoordinator,
)
from tta_agent_coordination.observability.logging import configure_logging

GREETER = AgentId("greeter", "g1")
CLIENT = AgentId("client")


class Greet(BaseModel):
    """The request's payload."""

    name: str


def make_worker(
    coordinator: RedisMessageCoordinator, registry: RedisAgentRegistry | None
) -> AgentWorker:
    """The greeter agent: answers ``Greet`` requests."""
    worker = AgentWorker(coordinator, registry, GREETER, concurrency=4, poll_interval=0.2)

    @worker.on_request(payload=Greet)
    async def greet(ctx: MessageContext[Greet]) -> dict[str, Any]:
        return {"greeting": f"hello, {ctx.payload.name}"}

    return worker


def connect() -> tuple[aioredis.Redis, str]:
    """The Redis at ``TTA_COORD_REDIS_URL``, or an embedded FakeRedis."""
    url = os.environ.get("TTA_COORD_REDIS_URL")
    if url:
        return aioredis.Redis.from_url(url), url
    from tta_agent_coordination.testing import fake_redis

    return fake_redis(), "an embedded FakeRedis"


async def main() -> int:
    """Start the worker, ask it once, check the reply; 0 when it is right."""
    # Library logs (structlog) on stderr, warnings and worse only.
    configure_logging("WARNING")
    client, where = connect()
    prefix = f"example-{uuid.uuid4().hex[:8]}"
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    registry = RedisAgentRegistry(client, key_prefix=prefix, coordinator=coordinator)
    print(f"minimal worker on {where} (prefix {prefix})")
    try:
        async with make_worker(coordinator, registry):
            reply = await coordinator.request(CLIENT, GREETER, Greet(name="Ada"), timeout=10)
        print(f"reply: {reply.payload}")
        ok = reply.payload == {"greeting": "hello, Ada"}
        print("OK" if ok else "FAILED: unexpected reply")
        return 0 if ok else 1
    finally:
        await registry.aclose()
        await coordinator.aclose()
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
