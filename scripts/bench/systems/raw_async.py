"""The asyncio floor: plain ``redis.asyncio`` (hiredis), no library, one call at a time.

The producer side of an asyncio application that uses redis-py directly: one ``XADD``
per message (batched: a pipeline of 100), a request as ``XADD`` + ``BLPOP`` of its reply
list. The worker is the sync floor's (``systems/raw.py``, ``COUNT 1``), so this row
differs from "raw streams, one at a time" only in the producer's client: what asyncio and
redis-py's asyncio client cost a caller per round trip.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import redis
import redis.asyncio as aioredis

from systems.raw import GROUP, KEY, PATTERNS, REPLY_PREFIX

__all__ = ["PATTERNS", "Producer", "worker_cmd"]


class Producer:
    batched = True

    def __init__(self, url: str, **_: Any) -> None:
        self._r = aioredis.Redis.from_url(url)
        self._seq = 0

    async def start(self) -> None:
        with contextlib.suppress(redis.ResponseError):
            await self._r.xgroup_create(KEY, GROUP, "0", mkstream=True)

    async def send(self, payload: dict[str, Any]) -> None:
        await self._r.xadd(KEY, {"d": json.dumps(payload)})

    async def send_batch(self, payloads: list[dict[str, Any]]) -> None:
        pipe = self._r.pipeline(transaction=False)
        for p in payloads:
            pipe.xadd(KEY, {"d": json.dumps(p)})
        await pipe.execute()

    async def request(self, payload: dict[str, Any]) -> Any:
        self._seq += 1
        reply_key = f"{REPLY_PREFIX}a{self._seq}"
        await self._r.xadd(KEY, {"d": json.dumps(payload), "r": reply_key})
        got: Any = await self._r.blpop([reply_key], timeout=10)
        if got is None:
            raise TimeoutError("no reply within 10 s")
        return json.loads(got[1])

    async def close(self) -> None:
        await self._r.aclose()


def worker_cmd(python: str, url: str, variant: str) -> list[str]:
    return [python, "-m", "systems.raw", url, "1"]
