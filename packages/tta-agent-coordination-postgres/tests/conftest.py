"""Fixtures: a Postgres store in a schema of its own (dropped after each test)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from tta_agent_coordination.testing.pytest_plugin import skip_or_fail
from tta_agent_coordination_postgres import PostgresMessageStore

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_dsn() -> str:
    """The test database (TTA_COORD_TEST_POSTGRES_DSN)."""
    return os.environ.get("TTA_COORD_TEST_POSTGRES_DSN", DEFAULT_DSN)


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The DSN of the real test Postgres; skips (fails under CI=true) when it is down."""
    dsn = postgres_dsn()
    try:
        psycopg.connect(dsn, connect_timeout=2).close()
    except psycopg.Error as exc:
        reason = f"Postgres at {dsn} is not reachable: {exc}"
        skip_or_fail(reason)
    return dsn


@pytest.fixture
def schema() -> str:
    """A schema name no other test uses."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def store(pg_dsn: str, schema: str) -> AsyncIterator[PostgresMessageStore]:
    """A migrated store in its own schema."""
    store = PostgresMessageStore(pg_dsn, schema=schema)
    await store.migrate()
    try:
        yield store
    finally:
        await store.drop_schema()
        await store.aclose()
