from __future__ import annotations

import asyncio
import json
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
    assert "a -> b  queued" in r.output
    r = await asyncio.to_thread(
        runner.invoke, app, ["history", "b", "--dsn", pg_dsn, "--schema", store.schema, "--json"]
    )
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.stdout)
    assert (row["sender"], row["recipient"], row["status"]) == ("a", "b", "queued")
    assert row["message"]["message_type"] == "event"


REAL_REDIS = "redis://127.0.0.1:6379/15"


def _real_redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REAL_REDIS, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no real Redis")


def test_restore_against_real_redis(store_schema_migrated, monkeypatch):
    pg_dsn, schema = store_schema_migrated
    _real_redis_or_skip()
    monkeypatch.setenv("TTA_COORD_REDIS_URL", REAL_REDIS)
    monkeypatch.setenv("TTA_COORD_KEY_PREFIX", "t_cli_restore")
    r = runner.invoke(app, ["restore", "--dsn", pg_dsn, "--schema", schema])
    assert r.exit_code == 0, r.output
    assert "restored 0 messages into redis://127.0.0.1:6379/15 under prefix 't_cli_restore'" in (
        r.output
    )


async def test_restore_goes_to_the_global_server_and_prefix(store, pg_dsn):
    """``tta-coord --redis-url A --key-prefix P store restore`` restores into A under P.

    Before, ``store restore`` had options of its own with defaults (db 0, prefix ``ao``)
    that silently won over the global ones: the restore went to another deployment.
    """
    from redis.asyncio import Redis

    from tta_agent_coordination import AgentId, AgentMessage, MessageType, RedisMessageCoordinator
    from tta_agent_coordination.cli.app import build_app
    from tta_agent_coordination.testing.backends import delete_prefix

    _real_redis_or_skip()
    client = Redis.from_url(REAL_REDIS)
    prefix = f"t_cli_{store.schema}"
    a, b = AgentId("a"), AgentId("b")
    try:
        c = RedisMessageCoordinator(client, key_prefix=prefix, store=store)
        sent = await c.send_message(
            a, b, AgentMessage(sender=a, recipient=b, message_type=MessageType.EVENT)
        )
        assert sent.delivered
        await c.flush_store()
        await delete_prefix(client, prefix)  # Redis lost its data
        r = await asyncio.to_thread(
            runner.invoke,
            build_app(),
            [
                *("--redis-url", REAL_REDIS, "--key-prefix", prefix),
                *("store", "restore", "--dsn", pg_dsn, "--schema", store.schema),
            ],
            env={"TTA_COORD_REDIS_URL": "", "TTA_COORD_KEY_PREFIX": ""},
        )
        assert r.exit_code == 0, r.output
        assert f"restored 1 messages into {REAL_REDIS} under prefix '{prefix}'" in r.output
        got = await c.receive(b)
        assert got is not None
        assert got.message.message_id == sent.message_id
        await c.aclose()
    finally:
        await delete_prefix(client, prefix)
        await client.aclose()


def test_restore_refuses_without_an_explicit_key_prefix(monkeypatch):
    monkeypatch.setenv("TTA_COORD_REDIS_URL", REAL_REDIS)
    monkeypatch.delenv("TTA_COORD_KEY_PREFIX", raising=False)
    r = runner.invoke(app, ["restore", "--dsn", "postgresql://x@127.0.0.1:1/test"])
    assert r.exit_code == 2, r.output
    assert "needs the key prefix" in r.output
    assert "Traceback" not in r.output


def test_restore_refuses_without_a_redis_url(monkeypatch):
    monkeypatch.delenv("TTA_COORD_REDIS_URL", raising=False)
    monkeypatch.setenv("TTA_COORD_KEY_PREFIX", "p")
    r = runner.invoke(app, ["restore", "--dsn", "postgresql://x@127.0.0.1:1/test"])
    assert r.exit_code == 2, r.output
    assert "no Redis server given" in r.output


def test_restore_has_no_connection_options_of_its_own():
    r = runner.invoke(app, ["restore", "--dsn", "x", "--redis-url", REAL_REDIS])
    assert r.exit_code == 2
    assert "No such option" in r.output


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


def assert_one_line_error(r, code: int, fragment: str) -> None:
    """The core CLI's style: exactly one ``Error: ...`` line on stderr, no traceback."""
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, r.stderr
    assert fragment in errors[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["migrate", "--dsn", "postgresql://postgres@127.0.0.1:1/test"], "cannot connect"),
        (["prune", "--older-than", "1d", "--dsn", "postgresql://x@127.0.0.1:1/test"], "cannot"),
        (["history", "a", "--dsn", "postgresql://x@127.0.0.1:1/test"], "cannot connect"),
    ],
)
def test_an_unreachable_database_is_a_runtime_error_exit_1(args, message):
    assert_one_line_error(runner.invoke(app, args), 1, message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["migrate", "--dsn", "not a dsn"], "invalid Postgres DSN"),
        (["history", "bad agent!", "--dsn", "postgresql://x@127.0.0.1:1/test"], "invalid agent"),
    ],
)
def test_usage_errors_exit_2_as_in_the_core_cli(args, message):
    # docs/cli.md: usage errors exit 2; the plugin used to exit 1 with "error: ...".
    assert_one_line_error(runner.invoke(app, args), 2, message)


def test_a_bad_age_is_a_usage_error():
    r = runner.invoke(app, ["prune", "--older-than", "soon", "--dsn", "postgresql://x@h/db"])
    assert r.exit_code == 2
    assert "is not an age like" in r.output


def test_restore_with_unreachable_redis_is_one_line(monkeypatch):
    monkeypatch.setenv("TTA_COORD_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("TTA_COORD_KEY_PREFIX", "p")
    r = runner.invoke(app, ["restore", "--dsn", "postgresql://x@127.0.0.1:1/test"])
    assert_one_line_error(r, 1, "cannot reach Redis at redis://127.0.0.1:1/0")
