"""Fixtures of the fault-injection suite: throwaway Redis servers, worker processes, Postgres.

Everything a test starts is stopped in a ``finally`` (servers and processes are SIGKILLed,
frozen ones resumed first; Postgres schemas dropped). Only loopback addresses are used.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from tta_agent_coordination.testing.pytest_plugin import skip_or_fail
from tta_agent_coordination_postgres import PostgresMessageStore

from .processes import WorkerProcesses
from .servers import RedisServers, require_redis_server

DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def redis_servers(tmp_path: Path) -> AsyncIterator[RedisServers]:
    """Starts throwaway redis-servers (``await redis_servers.start(...)``); all killed after."""
    require_redis_server()
    servers = RedisServers(tmp_path)
    try:
        yield servers
    finally:
        await servers.aclose()


@pytest.fixture
def worker_processes(tmp_path: Path) -> Iterator[WorkerProcesses]:
    """Starts ``worker_main.py`` processes; every one still running is SIGKILLed after."""
    ledger_dir = tmp_path / "ledger"
    ledger_dir.mkdir()
    procs = WorkerProcesses(ledger_dir)
    try:
        yield procs
    finally:
        procs.close()


@pytest.fixture
async def pg_dsn() -> str:
    """The DSN of the test Postgres; skipped when it is down, failed instead under CI=true."""
    dsn = os.environ.get("TTA_COORD_TEST_POSTGRES_DSN", DEFAULT_POSTGRES_DSN)
    try:
        probe = await psycopg.AsyncConnection.connect(dsn, connect_timeout=2)
        await probe.close()
    except psycopg.Error as exc:
        reason = f"Postgres at {dsn} is not reachable: {exc}"
        skip_or_fail(reason)
    return dsn


@pytest.fixture
async def pg_store(pg_dsn: str) -> AsyncIterator[PostgresMessageStore]:
    """A migrated ``PostgresMessageStore`` in a schema of its own, dropped after the test."""
    store = PostgresMessageStore(pg_dsn, schema=f"faults_{uuid.uuid4().hex[:12]}")
    try:
        await store.migrate()
        yield store
    finally:
        try:
            await store.drop_schema()
        finally:
            await store.aclose()
