"""The Postgres history of a message, and what the dashboard does when Redis is down."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from tta_agent_coordination.dashboard import DashboardSources, create_app
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail

from .conftest import TOKEN, dead_letter

WORKER = AgentId("world_builder", "w1")


@pytest.fixture
async def store() -> AsyncIterator[Any]:
    psycopg = pytest.importorskip("psycopg")
    pg = pytest.importorskip("tta_agent_coordination_postgres")
    dsn = os.environ.get("TTA_COORD_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        await (await psycopg.AsyncConnection.connect(dsn, connect_timeout=2)).close()
    except psycopg.Error as exc:
        skip_or_fail(f"Postgres at {dsn} is not reachable: {exc}")
    store = pg.PostgresMessageStore(dsn, schema=f"t_{uuid.uuid4().hex[:12]}")
    await store.migrate()
    try:
        yield store
    finally:
        await store.drop_schema()
        await store.aclose()


async def test_a_dead_letter_shows_its_history_from_the_store(
    coordination_redis: aioredis.Redis, key_prefix: str, store: Any
) -> None:
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, store=store, durability="sync"
    )
    registry = RedisAgentRegistry(coordination_redis, key_prefix=key_prefix)
    sources = DashboardSources(coordination_redis, coord, registry, store)
    assert sources.has_history
    app = create_app(sources, token=TOKEN)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://d"
        ) as http:
            await dead_letter(coord, WORKER, 1)
            listing = await http.get(f"/queues/{WORKER}")
            assert ">Messages<" in listing.text
            dead_id = re.findall(r'<tr id="dl-([0-9]+-[0-9]+)"', listing.text)[0]
            detail = await http.get(f"/queues/{WORKER}/dead/{dead_id}")
            assert "History (store)" in detail.text
            history = detail.text.split("History (store)")[1]
            for kind in ("sent", "leased", "dead"):
                assert f"<td>{kind}</td>" in history, kind
            found = await http.get("/messages", params={"id": "world_builder-w1-0"})
            assert "to world_builder:w1" in found.text
            assert "<td>dead</td>" in found.text
            unknown = await http.get("/messages", params={"id": "nope"})
            assert 'id="no-history"' in unknown.text
    finally:
        await coord.aclose()


async def test_redis_down_gives_a_503_page_that_retries(key_prefix: str) -> None:
    client = aioredis.Redis.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.2, decode_responses=True
    )
    coord = RedisMessageCoordinator(client, key_prefix=key_prefix)
    registry = RedisAgentRegistry(client, key_prefix=key_prefix)
    app = create_app(DashboardSources(client, coord, registry))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://d"
        ) as http:
            with capture_logs() as logs:
                for url in (
                    "/queues",
                    "/agents",
                    f"/queues/{WORKER}",
                    "/breakers",
                    "/runs",
                    "/runs/some-run",
                ):
                    page = await http.get(url)
                    assert page.status_code == 503, url
                    assert "Redis is not answering" in page.text
            assert {e["event"] for e in logs} >= {"dashboard_unavailable"}
    finally:
        await coord.aclose()
        await client.aclose()
