"""arq (defaults: max_jobs 10, poll_delay 0.5 s, keep_result 3600 s)."""

# The peers are installed only in .bench-venv/, not in the workspace venv pyright uses.
# pyright: reportMissingImports=false

from __future__ import annotations

import asyncio
import sys
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

PATTERNS = ["arq:*"]


async def noop(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    from common import record

    record(payload)


def _settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


class Producer:
    batched = False  # no batch API: "batched" = 100 concurrent enqueue_job calls

    def __init__(self, url: str, **_: Any) -> None:
        self._url = url

    async def start(self) -> None:
        self._pool = await create_pool(_settings(self._url))

    async def send(self, payload: dict[str, Any]) -> None:
        await self._pool.enqueue_job("noop", payload)

    async def send_batch(self, payloads: list[dict[str, Any]]) -> None:
        await asyncio.gather(*(self._pool.enqueue_job("noop", p) for p in payloads))

    async def close(self) -> None:
        await self._pool.aclose()


def worker_cmd(python: str, url: str, variant: str) -> list[str]:
    return [python, "-m", "systems.arq_sys", url]


if __name__ == "__main__":
    from arq.worker import Worker

    w = Worker(functions=[noop], redis_settings=_settings(sys.argv[1]))
    w.run()
