"""FastStream's Redis broker: a Redis Streams subscriber in a consumer group, and its RPC.

Defaults everywhere: one ``StreamSub`` subscriber (group ``g``; acked after the handler;
entries are not deleted, so the stream keeps them), one message at a time. There is no
stream batch publish API: "batched" = 100 concurrent ``publish`` calls. Request/reply is
``broker.request(..., stream=...)``: the handler's return value goes back to the
requester's reply channel (pub/sub).
"""

# The peers are installed only in .bench-venv/, not in the workspace venv pyright uses.
# pyright: reportMissingImports=false

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from faststream.redis import RedisBroker, StreamSub

STREAM = "benchfs:stream"
PATTERNS = ["benchfs:*"]


class Producer:
    batched = False

    def __init__(self, url: str, **_: Any) -> None:
        self._broker = RedisBroker(url)

    async def start(self) -> None:
        await self._broker.connect()

    async def send(self, payload: dict[str, Any]) -> None:
        await self._broker.publish(payload, stream=STREAM)

    async def send_batch(self, payloads: list[dict[str, Any]]) -> None:
        await asyncio.gather(*(self._broker.publish(p, stream=STREAM) for p in payloads))

    async def request(self, payload: dict[str, Any]) -> Any:
        reply = await self._broker.request(payload, stream=STREAM, timeout=10.0)
        return await reply.decode()

    async def close(self) -> None:
        await self._broker.stop()


def worker_cmd(python: str, url: str, variant: str) -> list[str]:
    return [python, "-m", "systems.faststream_sys", url]


async def _run(url: str) -> None:
    from common import record

    broker = RedisBroker(url)

    @broker.subscriber(stream=StreamSub(STREAM, group="g", consumer="c1"))
    async def noop(payload: dict[str, Any]) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        record(payload)
        return payload  # published only when the message has a reply_to (a request)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await broker.start()
    await stop.wait()
    await broker.stop()


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1]))
