"""BullMQ for Python (defaults: concurrency 1, completed jobs kept; one ``Worker``).

BullMQ keeps every completed job (hash + ``completed`` zset entry) unless the job says
``removeOnComplete``; the benchmark keeps the defaults, so its residue shows them.
"""

# The peers are installed only in .bench-venv/, not in the workspace venv pyright uses.
# pyright: reportMissingImports=false

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from bullmq import Queue, Worker

QUEUE = "bench"
PATTERNS = ["bull:*"]


async def noop(job: Any, token: str) -> None:
    from common import record

    record(job.data)


class Producer:
    batched = True  # Queue.addBulk: one script call per job, in one MULTI

    def __init__(self, url: str, **_: Any) -> None:
        self._url = url

    async def start(self) -> None:
        self._queue = Queue(QUEUE, {"connection": self._url})

    async def send(self, payload: dict[str, Any]) -> None:
        await self._queue.add("noop", payload)

    async def send_batch(self, payloads: list[dict[str, Any]]) -> None:
        await self._queue.addBulk([{"name": "noop", "data": p} for p in payloads])

    async def close(self) -> None:
        await self._queue.close()


def worker_cmd(python: str, url: str, variant: str) -> list[str]:
    return [python, "-m", "systems.bullmq_sys", url]


async def _run(url: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    worker = Worker(QUEUE, noop, {"connection": url})
    await stop.wait()
    await worker.close()


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1]))
