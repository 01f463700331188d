"""The floor: plain redis-py streams (sync client, hiredis), no library.

``raw_single``: one ``XADD`` per message; the worker reads ``COUNT 1`` and acks
(``XACK`` + ``XDEL`` pipelined) each message. ``raw_pipelined``: 100 ``XADD`` per
pipeline; the worker reads ``COUNT 100`` and acks each batch in one pipeline.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from typing import Any

import redis

KEY = "benchraw:stream"
GROUP = "g"
PATTERNS = ["benchraw:*"]
REPLY_PREFIX = "benchraw:reply:"


class Producer:
    batched = True

    def __init__(self, url: str, **_: Any) -> None:
        self._r = redis.Redis.from_url(url)
        self._seq = 0

    async def start(self) -> None:
        with contextlib.suppress(redis.ResponseError):
            self._r.xgroup_create(KEY, GROUP, "0", mkstream=True)

    async def send(self, payload: dict[str, Any]) -> None:
        self._r.xadd(KEY, {"d": json.dumps(payload)})

    async def send_batch(self, payloads: list[dict[str, Any]]) -> None:
        pipe = self._r.pipeline(transaction=False)
        for p in payloads:
            pipe.xadd(KEY, {"d": json.dumps(p)})
        pipe.execute()

    async def request(self, payload: dict[str, Any]) -> Any:
        self._seq += 1
        reply_key = f"{REPLY_PREFIX}{self._seq}"
        self._r.xadd(KEY, {"d": json.dumps(payload), "r": reply_key})
        got: Any = self._r.blpop([reply_key], timeout=10)
        if got is None:
            raise TimeoutError("no reply within 10 s")
        return json.loads(got[1])

    async def close(self) -> None:
        self._r.close()


def consume(
    r: redis.Redis, count: int, handle: Callable[[Any], None], limit: int | None = None
) -> int:
    """Read, handle and ack (``XACK`` + ``XDEL``, and the reply of a request) entries.

    Reads ``COUNT count`` at a time until ``limit`` entries are handled (forever without
    one); returns how many were handled.
    """
    handled = 0
    while limit is None or handled < limit:
        reply: Any = r.xreadgroup(GROUP, "c", {KEY: ">"}, count=count, block=1000)
        if not reply:
            continue
        entries = reply[0][1]
        ids = []
        pipe = r.pipeline(transaction=False)
        for entry_id, fields in entries:
            payload = json.loads(fields[b"d"])
            handle(payload)
            ids.append(entry_id)
            if b"r" in fields:
                pipe.lpush(fields[b"r"], json.dumps(payload))
        pipe.xack(KEY, GROUP, *ids)
        pipe.xdel(KEY, *ids)
        pipe.execute()
        handled += len(ids)
    return handled


def worker(url: str, count: int) -> None:
    from common import record

    r = redis.Redis.from_url(url)
    with contextlib.suppress(redis.ResponseError):
        r.xgroup_create(KEY, GROUP, "0", mkstream=True)
    consume(r, count, record)


def worker_cmd(python: str, url: str, variant: str) -> list[str]:
    return [python, "-m", "systems.raw", url, "1" if variant == "single" else "100"]


if __name__ == "__main__":
    worker(sys.argv[1], int(sys.argv[2]))
