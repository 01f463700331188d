"""A coordinator without the store on a prefix other coordinators record to is detected.

Issue 21 item 1: a worker without the store settled messages a store-attached producer
had recorded, silently; a restore then enqueued them again. Now coordinators with a store
mark the prefix, and one without a store warns (once) and ``tta-coord doctor`` says so.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import fakeredis.aioredis
import structlog
from typer.testing import CliRunner

from tta_agent_coordination.models import AgentId, AgentMessage, MessageType
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.store import AgentEvent, MessageEvent, MessageStore, RestoreTarget
from tta_agent_coordination.testing import real_redis

A = AgentId("marked", "a")
B = AgentId("producer", "p")


class ListStore(MessageStore):
    """Keeps events in a list."""

    def __init__(self) -> None:
        self.events: list[MessageEvent] = []

    async def record(self, events: Sequence[MessageEvent]) -> None:
        self.events.extend(events)

    async def record_agents(self, events: Sequence[AgentEvent]) -> None:
        return None

    async def restore(self, coordinator: RestoreTarget) -> int:
        return 0


async def _send(coord: RedisMessageCoordinator, n: int) -> None:
    msg = AgentMessage(sender=B, recipient=A, message_type=MessageType.EVENT, payload={"n": n})
    assert (await coord.send_message(B, A, msg)).delivered


async def test_a_storeless_receiver_on_a_recorded_prefix_warns_once() -> None:
    client = fakeredis.aioredis.FakeRedis()
    store = ListStore()
    producer = RedisMessageCoordinator(client, key_prefix="mk", store=store)
    worker = RedisMessageCoordinator(client, key_prefix="mk")
    try:
        await _send(producer, 1)
        await _send(producer, 2)
        assert await client.get(KeySpace("mk").store_marker) == b"ListStore"
        with structlog.testing.capture_logs() as logs:
            first = await worker.receive(A)
            second = await worker.receive(A)
        assert first is not None
        assert second is not None
        warnings = [e for e in logs if e["event"] == "store_not_attached"]
        assert len(warnings) == 1
        assert warnings[0]["recorded_by"] == "ListStore"
        assert "TTA_COORD_POSTGRES_DSN" in warnings[0]["hint"]
        assert worker.store_marker.unrecorded
        assert not producer.store_marker.unrecorded
    finally:
        await producer.aclose()
        await worker.aclose()
        await client.aclose()


async def test_no_warning_on_an_unrecorded_prefix_nor_with_a_store() -> None:
    client = fakeredis.aioredis.FakeRedis()
    plain = RedisMessageCoordinator(client, key_prefix="pl")
    recorded = RedisMessageCoordinator(client, key_prefix="pl", store=ListStore())
    try:
        await _send(plain, 1)
        with structlog.testing.capture_logs() as logs:
            assert await plain.receive(A) is not None
        assert not [e for e in logs if e["event"] == "store_not_attached"]
        assert not plain.store_marker.unrecorded
        await _send(recorded, 2)  # marks the prefix; the store's own receive is fine
        with structlog.testing.capture_logs() as logs:
            assert await recorded.receive(A) is not None
        assert not [e for e in logs if e["event"] == "store_not_attached"]
    finally:
        await plain.aclose()
        await recorded.aclose()
        await client.aclose()


def test_doctor_warns_when_the_prefix_is_recorded_and_these_settings_have_no_store(
    runner: CliRunner, cli, redis_url: str, prefix: str
) -> None:
    async def mark() -> None:
        client = await real_redis(redis_url)
        coord = RedisMessageCoordinator(client, key_prefix=prefix, store=ListStore())
        try:
            await _send(coord, 1)
        finally:
            await coord.aclose()
            await client.aclose()

    args = ["--redis-url", redis_url, "--key-prefix", prefix, "doctor", "--json"]
    before = json.loads(runner.invoke(cli, args).stdout)
    assert {c["name"]: c["status"] for c in before["checks"]}["message store"] == "skip"
    asyncio.run(mark())
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["store marker"]["status"] == "warn"
    assert "TTA_COORD_POSTGRES_DSN is not set" in checks["store marker"]["detail"]


def test_doctor_fails_on_an_unreachable_store(
    runner: CliRunner, cli, redis_url: str, prefix: str
) -> None:
    args = ["--redis-url", redis_url, "--key-prefix", prefix, "doctor", "--json"]
    result = runner.invoke(
        cli, args, env={"TTA_COORD_POSTGRES_DSN": "postgresql://nobody:secret@127.0.0.1:1/db"}
    )
    assert result.exit_code == 1, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["message store"]["status"] == "fail"
    assert "secret" not in checks["message store"]["detail"]
