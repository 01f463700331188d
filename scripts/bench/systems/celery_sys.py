"""Celery with the Redis broker (defaults: prefork pool; ``--concurrency 1``; no result backend)."""

# The peers are installed only in .bench-venv/, not in the workspace venv pyright uses.
# pyright: reportMissingImports=false

from __future__ import annotations

import os
from typing import Any

from celery import Celery

PATTERNS = ["celery*", "_kombu*", "unacked*"]

app = Celery("benchcelery", broker=os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/12"))


@app.task(name="noop")
def noop(payload: dict[str, Any]) -> None:
    from common import record

    record(payload)


class Producer:
    batched = False  # no batch API: batched = sequential apply_async

    def __init__(self, url: str, **_: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def send(self, payload: dict[str, Any]) -> None:
        noop.delay(payload)

    async def send_batch(self, payloads: list[dict[str, Any]]) -> None:
        for p in payloads:
            noop.delay(p)

    async def close(self) -> None:
        app.close()


def worker_cmd(python: str, url: str, variant: str) -> list[str]:
    return [
        python,
        "-m",
        "celery",
        "-A",
        "systems.celery_sys",
        "worker",
        "--concurrency",
        "1",
        "--loglevel",
        "WARNING",
    ]
