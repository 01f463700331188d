"""tta-agent-coordination: ``RedisMessageCoordinator`` + ``AgentWorker``.

Variants: ``default`` (AgentWorker defaults: 8 handlers at once, reads that adapt from 8
to 256 messages) and ``tuned`` (concurrency 256, batch_size 256). ``queues=K`` spreads
messages over K agent queues (one AgentWorker per queue in the worker process). The
coordinator keeps its defaults (circuit breaker and retries around every call) except
``queue_size``, raised so that N messages fit in one queue. No registry (workers of one
queue compete). Request/reply: ``coordinator.request()`` to the worker's ``on_request``
handler, which returns the payload.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import redis.asyncio as aioredis

from tta_agent_coordination.models import AgentId, AgentMessage, MessageType
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.runtime.worker import AgentWorker

PREFIX = "benchours"
PATTERNS = [f"{PREFIX}:*"]
SENDER = AgentId("bench_producer")
QUEUE_SIZE = 1_000_000
TUNED = {"concurrency": 256, "batch_size": 256}


def recipients(queues: int) -> list[AgentId]:
    if queues == 1:
        return [AgentId("bench_worker", "w1")]
    return [AgentId("bench_worker", f"q{i}") for i in range(queues)]


class Producer:
    batched = True

    def __init__(self, url: str, queues: int = 1, **_: Any) -> None:
        self._url = url
        self._to = recipients(queues)
        self._next = 0

    async def start(self) -> None:
        self._redis = aioredis.Redis.from_url(self._url)
        self._coord = RedisMessageCoordinator(self._redis, PREFIX, queue_size=QUEUE_SIZE)

    def _message(self, payload: dict[str, Any]) -> AgentMessage:
        to = self._to[self._next % len(self._to)]
        self._next += 1
        return AgentMessage(
            sender=SENDER, recipient=to, message_type=MessageType.EVENT, payload=payload
        )

    async def send(self, payload: dict[str, Any]) -> None:
        m = self._message(payload)
        result = await self._coord.send_message(SENDER, m.recipient, m)
        assert result.delivered, result

    async def send_batch(self, payloads: list[dict[str, Any]]) -> None:
        results = await self._coord.send_many([self._message(p) for p in payloads])
        assert all(r.delivered for r in results)

    async def request(self, payload: dict[str, Any]) -> Any:
        reply = await self._coord.request(SENDER, self._to[0], payload, timeout=10.0)
        return reply.payload

    async def close(self) -> None:
        await self._coord.aclose()
        await self._redis.aclose()


def worker_cmd(python: str, url: str, variant: str, queues: int = 1) -> list[str]:
    return [python, "-m", "systems.ours", url, variant, str(queues)]


async def _run(url: str, variant: str, queues: int) -> None:
    from common import record

    redis = aioredis.Redis.from_url(url, max_connections=max(100, 2 * queues + 10))
    coord = RedisMessageCoordinator(redis, PREFIX, queue_size=QUEUE_SIZE)
    options: dict[str, Any] = TUNED if variant == "tuned" else {}
    workers: list[AgentWorker] = []
    for agent in recipients(queues):
        worker = AgentWorker(coord, None, agent, **options)

        @worker.on_event()
        async def noop(ctx: Any) -> None:
            record(ctx.message.payload)

        @worker.on_request()
        async def echo(ctx: Any) -> Any:
            return ctx.message.payload

        workers.append(worker)
    for w in workers:
        await w.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await asyncio.gather(*(w.stop(grace_period=2) for w in workers))
    await coord.aclose()
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1], sys.argv[2], int(sys.argv[3])))
