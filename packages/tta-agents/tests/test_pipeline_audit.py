"""The audit trail of a TTA workflow is the coordinator's Postgres store: each request once."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis

from tta_agent_coordination import AgentWorker, MessageContext, RedisMessageCoordinator
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.store import MessageStatus
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail
from tta_agent_coordination_postgres import PostgresMessageStore
from tta_agents.pipeline import SESSION_HEADER, STEP_HEADER, WORKFLOW_HEADER, TTAPipeline

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def store() -> AsyncIterator[PostgresMessageStore]:
    dsn = os.environ.get("TTA_COORD_TEST_POSTGRES_DSN", DEFAULT_DSN)
    try:
        await (await psycopg.AsyncConnection.connect(dsn, connect_timeout=2)).close()
    except psycopg.Error as exc:
        skip_or_fail(f"Postgres at {dsn} is not reachable: {exc}")
    store = PostgresMessageStore(dsn, schema=f"t_{uuid.uuid4().hex[:12]}")
    await store.migrate()
    try:
        yield store
    finally:
        await store.drop_schema()
        await store.aclose()


async def test_every_request_of_a_workflow_is_recorded_once(
    coordination_redis: aioredis.Redis, key_prefix: str, store: PostgresMessageStore
) -> None:
    coordinator = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, store=store, durability="sync"
    )
    handled: list[str] = []
    workers: list[AgentWorker] = []
    for agent_type in ("input_processor", "world_builder", "narrative_generator"):
        worker = AgentWorker(coordinator, None, AgentId(agent_type, "a1"), poll_interval=0.05)

        @worker.on_request()
        async def handle(ctx: MessageContext[Any], agent_type: str = agent_type) -> dict[str, Any]:
            handled.append(agent_type)
            return {"done": agent_type}

        workers.append(worker)
    try:
        for worker in workers:
            await worker.start()
        result = await TTAPipeline(coordinator, progress_events=False).run(
            "session-9", "hello", workflow_id="wf-audit"
        )
        assert result.ok, result
        assert handled == ["input_processor", "world_builder", "narrative_generator"]
        # A worker replies, then acks: the last ack may land just after run() returned.
        await coordinator.flush_store()
        for worker in workers:
            await worker.stop()
        await coordinator.flush_store()
        for index, agent_type in enumerate(handled):
            rows = await store.history(AgentId(agent_type))
            (row,) = [r for r in rows if r.recipient == AgentId(agent_type)]
            assert row.status is MessageStatus.ACKED
            assert row.attempts == 1
            assert row.message is not None
            headers = row.message.headers
            assert headers[WORKFLOW_HEADER] == "wf-audit"
            assert headers[SESSION_HEADER] == "session-9"
            assert headers[STEP_HEADER] == f"{index}:{('ipa', 'wba', 'nga')[index]}"
    finally:
        for worker in workers:
            await worker.stop()
        await coordinator.aclose()
