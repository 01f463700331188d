"""taskiq with taskiq-redis's ``RedisStreamBroker`` (defaults; ``taskiq worker --workers 1``)."""

# The peers are installed only in .bench-venv/, not in the workspace venv pyright uses.
# pyright: reportMissingImports=false

from __future__ import annotations

import asyncio
import os
from typing import Any

from taskiq_redis import RedisStreamBroker

PATTERNS = ["taskiq*"]

broker = RedisStreamBroker(url=os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/12"))


@broker.task(task_name="noop")
async def noop(payload: dict[str, Any]) -> None:
    from common import record

    record(payload)


class Producer:
    batched = False  # no batch API: batched = 100 concurrent kiq() calls

    def __init__(self, url: str, **_: Any) -> None:
        pass

    async def start(self) -> None:
        await broker.startup()

    async def send(self, payload: dict[str, Any]) -> None:
        await noop.kiq(payload)

    async def send_batch(self, payloads: list[dict[str, Any]]) -> None:
        await asyncio.gather(*(noop.kiq(p) for p in payloads))

    async def close(self) -> None:
        await broker.shutdown()


def worker_cmd(python: str, url: str, variant: str) -> list[str]:
    return [python, "-m", "taskiq", "worker", "systems.taskiq_sys:broker", "--workers", "1"]
