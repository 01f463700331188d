"""Dramatiq with its Redis broker (defaults; ``dramatiq --processes 1``, 8 threads)."""

# The peers are installed only in .bench-venv/, not in the workspace venv pyright uses.
# pyright: reportMissingImports=false

from __future__ import annotations

import os
import sys
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

PATTERNS = ["dramatiq:*"]

broker = RedisBroker(url=os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/12"))
dramatiq.set_broker(broker)


@dramatiq.actor
def noop(payload: dict[str, Any]) -> None:
    from common import record

    record(payload)


class Producer:
    batched = False  # no batch API (each send is one script call): batched = sequential

    def __init__(self, url: str, **_: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def send(self, payload: dict[str, Any]) -> None:
        noop.send(payload)

    async def send_batch(self, payloads: list[dict[str, Any]]) -> None:
        for p in payloads:
            noop.send(p)

    async def close(self) -> None:
        broker.close()


def worker_cmd(python: str, url: str, variant: str) -> list[str]:
    return [python, "-m", "dramatiq", "systems.dramatiq_sys", "--processes", "1"]


if __name__ == "__main__":
    sys.exit("run through dramatiq's CLI")
