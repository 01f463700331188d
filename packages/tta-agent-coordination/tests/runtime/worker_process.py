"""A worker in its own process, for the signal and crash tests (run as a script).

Usage: python worker_process.py REDIS_URL KEY_PREFIX HANDLER_SECONDS [AGENT]
(AGENT: ``type:instance``, ``server:s1`` by default.)
Prints "ready" once the worker runs; exits after a graceful stop.
"""

import asyncio
import sys

from tta_agent_coordination import (
    AgentId,
    AgentWorker,
    MessageContext,
    RedisAgentRegistry,
    RedisMessageCoordinator,
)
from tta_agent_coordination.testing import real_redis

AGENT = AgentId("server", "s1")


async def main(url: str, prefix: str, seconds: float, agent: AgentId = AGENT) -> None:
    client = await real_redis(url)
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    registry = RedisAgentRegistry(
        client, key_prefix=prefix, heartbeat_ttl_s=1.5, coordinator=coordinator
    )
    worker = AgentWorker(
        coordinator,
        registry,
        agent,
        concurrency=4,
        visibility_timeout=30.0,
        grace_period=10.0,
        poll_interval=0.2,
    )

    @worker.on_event()
    async def slow(ctx: MessageContext[dict[str, object]]) -> None:
        await asyncio.sleep(seconds)

    await worker.start()
    print("ready", flush=True)
    try:
        await worker.run()
    finally:
        await client.aclose()


if __name__ == "__main__":
    agent = AgentId.parse(sys.argv[4]) if len(sys.argv) > 4 else AGENT
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), agent))
