from __future__ import annotations

import asyncio
import uuid

import psycopg
import psycopg.conninfo
import pytest
from psycopg import sql

from tta_agent_coordination_postgres import (
    PostgresMessageStore,
    StoreConfigurationError,
    StoreNotMigratedError,
    StorePermissionError,
    StoreUnavailableError,
    migrations,
)


async def tables(dsn: str, schema: str) -> set[str]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        )
        return {r[0] for r in await cur.fetchall()}


SHIPPED = [v for v, _, _ in migrations()]
"""Every shipped version (numbers may have gaps: features add theirs in parallel)."""


def test_migrations_are_shipped_in_order():
    versions = [v for v, _, _ in migrations()]
    assert versions == sorted(versions)
    assert versions[0] == 1
    assert {1, 2, 3, 5} <= set(versions)  # 0005 meetings (0004 is plan runs, in parallel)


async def test_missing_versions_apply_across_a_gap(pg_dsn, schema, monkeypatch):
    # A schema migrated while a version was absent (0005 shipped before 0004) gets the
    # missing one later; what is applied stays applied.
    from tta_agent_coordination_postgres import store as store_module

    shipped = migrations()
    gap = [m for m in shipped if m[0] != 4 and m[0] <= 5]
    later = [*shipped, (max(v for v, _, _ in shipped) + 1, "later", "CREATE TABLE later (x int)")]
    async with PostgresMessageStore(pg_dsn, schema=schema) as store:
        monkeypatch.setattr(store_module, "migrations", lambda: [m for m in gap if m[0] != 3])
        first = await store.migrate()
        assert 3 not in first
        assert 5 in first
        monkeypatch.setattr(store_module, "migrations", lambda: later)
        second = await store.migrate()
        assert 3 in second
        assert later[-1][0] in second
        assert not set(first) & set(second)
        assert {"meetings", "meeting_events", "meeting_participants", "later"} <= await tables(
            pg_dsn, schema
        )
        await store.drop_schema()


async def test_fresh_then_repeated(pg_dsn, schema):
    async with PostgresMessageStore(pg_dsn, schema=schema) as store:
        try:
            assert await store.migrate() == SHIPPED
            assert await store.migrate() == []
            assert {"agents", "messages", "message_events", "schema_migrations"} <= await tables(
                pg_dsn, schema
            )
        finally:
            await store.drop_schema()


async def test_concurrent_migrations_apply_once(pg_dsn, schema):
    stores = [PostgresMessageStore(pg_dsn, schema=schema) for _ in range(5)]
    try:
        results = await asyncio.gather(*(s.migrate() for s in stores))
        assert sorted(results) == [[], [], [], [], SHIPPED]
    finally:
        await stores[0].drop_schema()
        for s in stores:
            await s.aclose()


async def test_unmigrated_schema_says_so(pg_dsn, schema):
    async with PostgresMessageStore(pg_dsn, schema=schema) as store:
        with pytest.raises(StoreNotMigratedError, match="migrate"):
            await store.stats()


def test_bad_schema_name():
    with pytest.raises(StoreConfigurationError, match="schema"):
        PostgresMessageStore("postgresql://x@127.0.0.1/test", schema="Bad-Name")
    with pytest.raises(StoreConfigurationError, match="pool"):
        PostgresMessageStore("postgresql://x@127.0.0.1/test", min_size=3, max_size=2)


async def test_bad_dsn_is_a_configuration_error():
    store = PostgresMessageStore("this is not a dsn")
    with pytest.raises(StoreConfigurationError, match="invalid Postgres DSN"):
        await store.open()


async def test_unreachable_database():
    store = PostgresMessageStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout_s=1)
    with pytest.raises(StoreUnavailableError, match="cannot connect"):
        await store.migrate()


async def test_user_without_privileges_gets_a_clear_error_and_nothing_is_written(pg_dsn, schema):
    role = "tta_coord_test_noperm"
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if await cur.fetchone() is None:
            await conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        await conn.execute(
            sql.SQL("REVOKE CREATE ON DATABASE {} FROM {}").format(
                sql.Identifier(conn.info.dbname), sql.Identifier(role)
            )
        )
    dsn = psycopg.conninfo.make_conninfo(pg_dsn, user=role)
    async with PostgresMessageStore(dsn, schema=schema) as store:
        with pytest.raises(StorePermissionError, match="privilege"):
            await store.migrate()
    assert await tables(pg_dsn, schema) == set()


async def test_failed_migration_leaves_nothing(pg_dsn, schema, monkeypatch):
    from tta_agent_coordination_postgres import store as store_module

    broken = [*migrations(), (9999, "broken", "CREATE TABLE oops (x int); SELECT 1/0;")]
    monkeypatch.setattr(store_module, "migrations", lambda: broken)
    async with PostgresMessageStore(pg_dsn, schema=schema) as store:
        with pytest.raises(Exception, match=r"division by zero|failed"):
            await store.migrate()
        assert await tables(pg_dsn, schema) == set()


def test_schema_names_are_unique():
    assert uuid.uuid4().hex != uuid.uuid4().hex


def test_listing_the_migrations_keeps_the_exported_function() -> None:
    import tta_agent_coordination_postgres as package

    assert package.migrations()  # reads the migrations folder
    assert callable(package.migrations)  # not rebound to the migrations subpackage
    from tta_agent_coordination_postgres import migrations

    assert [v for v, _, _ in migrations()] == sorted(v for v, _, _ in migrations())
