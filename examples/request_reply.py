"""Request/reply between agents: an answer, a remote failure, and a timeout.

* ``calculator`` answers ``divide`` requests; dividing by zero raises ``PermanentError``,
  which the requester receives as ``RemoteHandlerError`` (and the request is
  dead-lettered, never retried);
* a request to an agent that nobody runs ends in ``RequestTimeoutError`` (the request
  expires with it: a worker that starts later dead-letters it instead of working for
  nobody).

Runs on an embedded FakeRedis, or the Redis at ``TTA_COORD_REDIS_URL``; exits 0 only
when all three outcomes are right.
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
    PermanentError,
    RedisMessageCoordinator,
)
from tta_agent_coordination.errors import RemoteHandlerError, RequestTimeoutError
from tta_agent_coordination.models import DeadLetter
from tta_agent_coordination.observability.logging import configure_logging

CALCULATOR = AgentId("calculator")
NOBODY = AgentId("oracle")
ASKER = AgentId("asker")


class Divide(BaseModel):
    """A division to do."""

    a: float
    b: float


def connect() -> tuple[aioredis.Redis, str]:
    """The Redis at ``TTA_COORD_REDIS_URL``, or an embedded FakeRedis."""
    url = os.environ.get("TTA_COORD_REDIS_URL")
    if url:
        return aioredis.Redis.from_url(url), url
    from tta_agent_coordination.testing import fake_redis

    return fake_redis(), "an embedded FakeRedis"


async def main() -> int:
    """Ask three questions; 0 when each ends as it should."""
    # The failures below are on purpose; the library's logs of them would drown the output.
    configure_logging("CRITICAL")
    client, where = connect()
    prefix = f"example-{uuid.uuid4().hex[:8]}"
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    worker = AgentWorker(coordinator, None, CALCULATOR, poll_interval=0.2)

    @worker.on_request(payload=Divide)
    async def divide(ctx: MessageContext[Divide]) -> dict[str, Any]:
        if ctx.payload.b == 0:
            raise PermanentError("division by zero")  # retrying cannot help
        return {"quotient": ctx.payload.a / ctx.payload.b}

    print(f"request/reply on {where} (prefix {prefix})")
    outcomes: list[str] = []
    try:
        async with worker:
            reply = await coordinator.request(ASKER, CALCULATOR, Divide(a=1, b=4), timeout=10)
            print(f"1/4 = {reply.payload['quotient']}")
            if reply.payload == {"quotient": 0.25}:
                outcomes.append("answer")
            try:
                await coordinator.request(ASKER, CALCULATOR, Divide(a=1, b=0), timeout=10)
            except RemoteHandlerError as exc:
                print(f"1/0 -> RemoteHandlerError: {exc.error_type}: {exc.remote_message}")
                outcomes.append("remote error")
            try:
                await coordinator.request(ASKER, NOBODY, {"question": "?"}, timeout=0.5)
            except RequestTimeoutError as exc:
                print(f"oracle -> {exc}")
                outcomes.append("timeout")
        letters = await coordinator.dead_letters(CALCULATOR)
        payloads = [d.message.payload if isinstance(d, DeadLetter) else d.fields for d in letters]
        print(f"calculator's dead letters: {payloads}")
        ok = outcomes == ["answer", "remote error", "timeout"] and len(letters) == 1
        print("OK" if ok else f"FAILED: outcomes {outcomes}, dead letters {len(letters)}")
        return 0 if ok else 1
    finally:
        await coordinator.aclose()
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
