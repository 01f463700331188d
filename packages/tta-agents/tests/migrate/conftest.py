"""A writer of the original TTA key layout, and the "legacy deployment" fixture.

``LegacyWriter`` writes exactly what the original ``RedisMessageCoordinator`` wrote
(``../shared/reference/tta-original.md`` §1.2): ``QueueMessage`` JSON members scored by
available-at µs in ``sched:…:prio:{p}``, reservations in ``reserved`` + ``reserved_deadlines``,
dead letters in ``dlq``, an entry in the ``queue`` audit list per send, and ``subs`` sets.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from tta_agent_coordination import RedisMessageCoordinator
from tta_agent_coordination.models import AgentId

WBA = ("world_builder", "w1")
IPA = ("input_processor", None)
UNICODE_TEXT = "Élan vital — 世界 🌍 «ñ»"


@pytest.fixture
def coordinator(coordination_coordinator: RedisMessageCoordinator) -> RedisMessageCoordinator:
    """The core's coordinator a migration moves into (the testing plugin's, by a short name)."""
    return coordination_coordinator


def now_us() -> int:
    return int(time.time() * 1_000_000)


class LegacyWriter:
    """Writes keys as the original code did, under ``prefix``."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._seq = 0

    def agent(self, agent: tuple[str, str | None]) -> str:
        return f"{agent[0]}:{agent[1] or 'default'}"

    def payload(
        self,
        recipient: tuple[str, str | None],
        message_id: str,
        *,
        priority: int = 5,
        payload: dict[str, Any] | None = None,
        attempts: int = 0,
        last_error: str | None = None,
    ) -> str:
        self._seq += 1
        stamp = datetime.now(UTC).isoformat()
        message = {
            "message_id": message_id,
            "sender": {"type": "input_processor", "instance": "sender"},
            "recipient": {"type": recipient[0], "instance": recipient[1]},
            "message_type": "request",
            "payload": payload if payload is not None else {"n": self._seq},
            "priority": priority,
            "routing": {"topic": None, "tags": []},
            "timestamp": stamp,
        }
        return json.dumps(
            {
                "message": message,
                "priority": priority,
                "enqueued_at": stamp,
                "delivery_attempts": attempts,
                "last_error": last_error,
            }
        )

    async def send(
        self,
        recipient: tuple[str, str | None],
        message_id: str,
        *,
        priority: int = 5,
        due_in_s: float = 0.0,
        **fields: Any,
    ) -> str:
        """RPUSH audit + ZADD sched (a retry waiting its backoff: ``due_in_s`` > 0)."""
        body = self.payload(recipient, message_id, priority=priority, **fields)
        agent = self.agent(recipient)
        await self.redis.rpush(f"{self.prefix}:queue:{agent}", body)
        score = now_us() + int(due_in_s * 1_000_000)
        await self.redis.zadd(f"{self.prefix}:sched:{agent}:prio:{priority}", {body: score})
        # Distinct µs scores, as sends a moment apart have.
        await asyncio.sleep(0.002)
        return body

    async def raw_sched(self, recipient: tuple[str, str | None], member: str, priority: int = 5):
        agent = self.agent(recipient)
        await self.redis.zadd(f"{self.prefix}:sched:{agent}:prio:{priority}", {member: now_us()})

    async def reserve(
        self,
        recipient: tuple[str, str | None],
        message_id: str,
        *,
        deadline_in_s: float,
        raw: str | None = None,
        **fields: Any,
    ) -> str:
        """HSET reserved token payload + ZADD reserved_deadlines token deadline."""
        agent = self.agent(recipient)
        body = raw if raw is not None else self.payload(recipient, message_id, **fields)
        token = f"res_{message_id}"
        await self.redis.hset(f"{self.prefix}:reserved:{agent}", token, body)
        deadline = now_us() + int(deadline_in_s * 1_000_000)
        await self.redis.zadd(f"{self.prefix}:reserved_deadlines:{agent}", {token: deadline})
        return token

    async def dead(self, recipient: tuple[str, str | None], message_id: str, **fields: Any) -> str:
        body = self.payload(recipient, message_id, **fields)
        await self.redis.rpush(f"{self.prefix}:dlq:{self.agent(recipient)}", body)
        return body

    async def raw_dead(self, recipient: tuple[str, str | None], value: str) -> None:
        await self.redis.rpush(f"{self.prefix}:dlq:{self.agent(recipient)}", value)

    async def subscribe(self, agent: tuple[str, str | None], *types: str) -> None:
        await self.redis.sadd(f"{self.prefix}:subs:{self.agent(agent)}", *types)


async def write_deployment(writer: LegacyWriter) -> None:
    """Every case: ready at each priority, delayed, reserved and expired, dead, unparsable,
    unicode, an instance-less agent, and an agent name the core refuses."""
    await writer.send(WBA, "m-low-1", priority=1)
    await writer.send(WBA, "m-high-1", priority=9)
    await writer.send(WBA, "m-norm-1")
    await writer.send(WBA, "m-norm-2", payload={"text": UNICODE_TEXT})
    await writer.send(WBA, "m-high-2", priority=9)
    await writer.send(WBA, "m-retry-1", attempts=2, last_error="boom")
    await writer.send(WBA, "m-later-1", due_in_s=3600, attempts=1, last_error="later")
    await writer.raw_sched(WBA, "{not json")
    await writer.reserve(WBA, "m-res-expired", deadline_in_s=-5)
    await writer.reserve(WBA, "m-res-live", deadline_in_s=600, attempts=1, last_error="e1")
    await writer.reserve(WBA, "m-res-last", deadline_in_s=-1, attempts=3, last_error="again")
    await writer.reserve(WBA, "m-res-junk", deadline_in_s=-1, raw="\x00garbage")
    await writer.dead(WBA, "m-dead-1", attempts=4, last_error="fatal")
    await writer.raw_dead(WBA, "not a queue message")
    await writer.send(IPA, "m-ipa-1", payload={"text": UNICODE_TEXT})
    await writer.send(("input_processor", "spiel:1"), "m-bad-agent")
    await writer.subscribe(WBA, "request", "event")


EXPECTED_WBA_ORDER = [
    # HIGH, in send order; NORMAL in send order, then the requeued reservations (by lease
    # deadline, as the original's recovery would have appended them); then LOW.
    ("m-high-1", 1),
    ("m-high-2", 1),
    ("m-norm-1", 1),
    ("m-norm-2", 1),
    ("m-retry-1", 3),
    ("m-res-expired", 2),
    ("m-res-live", 3),
    ("m-low-1", 1),
]


async def drain(
    coordinator: Any, queue: AgentId, limit: int = 50
) -> list[tuple[str, int, dict[str, Any]]]:
    """Receive and ack until the queue has nothing ready: (id, attempts, payload) each."""
    got: list[tuple[str, int, dict[str, Any]]] = []
    for _ in range(limit):
        received = await coordinator.receive(queue, visibility_timeout=30)
        if received is None:
            return got
        got.append((received.message.message_id, received.attempts, received.message.payload))
        assert await coordinator.ack(queue, received.token)
    raise AssertionError("the queue did not drain")


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
