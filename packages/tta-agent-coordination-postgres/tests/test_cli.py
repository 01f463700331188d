from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import redis
import typer
from typer.testing import CliRunner

from tta_agent_coordination_postgres.cli import app, parse_age

runner = CliRunner()


def test_parse_age():
    assert parse_age("90") == timedelta(seconds=90)
    assert parse_age("15m") == timedelta(minutes=15)
    assert parse_age("7d") == timedelta(days=7)
    with pytest.raises(typer.BadParameter):
        parse_age("soon")


def test_migrate_history_prune(pg_dsn, schema):
    env = {"TTA_COORD_POSTGRES_DSN": pg_dsn}
    try:
        r = runner.invoke(app, ["migrate", "--schema", schema], env=env)
        assert r.exit_code == 0, r.output
        assert "applied migrations 1" in r.output
        r = runner.invoke(app, ["migrate", "--schema", schema], env=env)
        assert "up to date" in r.output
        r = runner.invoke(
            app, ["history", "writer:w1", "--schema", schema, "--since", "1h"], env=env
        )
        assert r.exit_code == 0, r.output
        assert "no messages" in r.output
        r = runner.invoke(app, ["prune", "--older-than", "30d", "--schema", schema], env=env)
        assert r.exit_code == 0, r.output
        assert "deleted 0" in r.output
    finally:
        import psycopg
        import psycopg.sql

        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    psycopg.sql.Identifier(schema)
                )
            )


async def test_history_lists_messages(store, coordination_redis, key_prefix, pg_dsn):
    from tta_agent_coordination import AgentId, AgentMessage, MessageType, RedisMessageCoordinator

    a, b = AgentId("a"), AgentId("b")
    c = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, store=store)
    await c.send_message(a, b, AgentMessage(sender=a, recipient=b, message_type=MessageType.EVENT))
    await c.aclose()
    # The CLI runs its own event loop: invoke it from a thread.
    r = await asyncio.to_thread(
        runner.invoke, app, ["history", "b", "--dsn", pg_dsn, "--schema", store.schema]
    )
    assert r.exit_code == 0, r.output
    assert "a:default -> b:default  queued" in r.output


def test_restore_against_real_redis(store_schema_migrated):
    pg_dsn, schema = store_schema_migrated
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/15", socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no real Redis")
    r = runner.invoke(
        app,
        [
            "restore",
            "--dsn",
            pg_dsn,
            "--schema",
            schema,
            "--redis-url",
            "redis://127.0.0.1:6379/15",
            "--key-prefix",
            "t_cli_restore",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "restored 0 messages" in r.output


@pytest.fixture
def store_schema_migrated(pg_dsn, schema):
    r = runner.invoke(app, ["migrate", "--dsn", pg_dsn, "--schema", schema])
    assert r.exit_code == 0
    yield pg_dsn, schema
    import psycopg
    import psycopg.sql

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                psycopg.sql.Identifier(schema)
            )
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["migrate", "--dsn", "not a dsn"], "invalid Postgres DSN"),
        (["migrate", "--dsn", "postgresql://postgres@127.0.0.1:1/test"], "cannot connect"),
        (["history", "bad agent!", "--dsn", "postgresql://x@127.0.0.1:1/test"], "invalid agent"),
        (
            [
                "restore",
                "--dsn",
                "postgresql://x@127.0.0.1:1/test",
                "--redis-url",
                "redis://127.0.0.1:1/0",
            ],
            "error:",
        ),
        (["prune", "--older-than", "1d", "--dsn", "postgresql://x@127.0.0.1:1/test"], "cannot"),
    ],
)
def test_user_mistakes_give_one_line_and_exit_1(args, message):
    r = runner.invoke(app, args)
    assert r.exit_code == 1
    assert message in r.output
    assert "Traceback" not in r.output
