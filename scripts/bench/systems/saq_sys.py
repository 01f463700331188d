"""SAQ (defaults: concurrency 10; ``saq`` CLI with one worker process)."""

# The peers are installed only in .bench-venv/, not in the workspace venv pyright uses.
# pyright: reportMissingImports=false

from __future__ import annotations

import asyncio
import os
from typing import Any

from saq import Queue

PATTERNS = ["saq:*"]

queue = Queue.from_url(os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/12"), name="bench")


async def noop(ctx: dict[str, Any], *, payload: dict[str, Any]) -> None:
    from common import record

    record(payload)


settings = {"queue": queue, "functions": [noop]}


class Producer:
    batched = False  # no batch API: batched = 100 concurrent enqueue calls

    def __init__(self, url: str, **_: Any) -> None:
        pass

    async def start(self) -> None:
        await queue.connect()

    async def send(self, payload: dict[str, Any]) -> None:
        await queue.enqueue("noop", payload=payload)

    async def send_batch(self, payloads: list[dict[str, Any]]) -> None:
        await asyncio.gather(*(queue.enqueue("noop", payload=p) for p in payloads))

    async def close(self) -> None:
        await queue.disconnect()


def worker_cmd(python: str, url: str, variant: str) -> list[str]:
    return [python, "-m", "saq", "systems.saq_sys.settings", "--workers", "1"]
