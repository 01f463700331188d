"""`tta-coord worker` records to the Postgres store (issue 21 item 1).

Before, the CLI worker's coordinator had no store: requests sent with the store attached
and answered by `tta-coord worker` stayed `queued` in `store history`, and `store restore`
after a Redis loss enqueued the finished work again.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tta_agent_coordination.models import AgentId, AgentMessage, MessageType
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import delete_prefix, real_redis
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail

psycopg = pytest.importorskip("psycopg")
pg = pytest.importorskip("tta_agent_coordination_postgres")
pg_cli = pytest.importorskip("tta_agent_coordination_postgres.cli")

AGENT = AgentId("clistore", "w1")
SENDER = AgentId("producer", "p1")
COUNT = 5

STORE_WORKER = """
from tta_agent_coordination import AgentId
from tta_agent_coordination.runtime.worker import AgentWorker

handled = []
stores = []


def factory(coordinator, registry):
    stores.append(coordinator.store)
    worker = AgentWorker(coordinator, registry, AgentId("clistore", "w1"), poll_interval=0.1)

    @worker.on_request()
    async def handle(ctx):
        handled.append(ctx.payload["n"])
        if len(handled) == COUNT:
            worker.request_stop("test done")
        return {"n": ctx.payload["n"]}

    return worker
"""


@pytest.fixture(scope="module")
def pg_dsn() -> str:
    dsn = os.environ.get("TTA_COORD_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        psycopg.connect(dsn, connect_timeout=2).close()
    except psycopg.Error as exc:
        skip_or_fail(f"Postgres at {dsn} is not reachable: {exc}")
    return dsn


@pytest.fixture
def schema(pg_dsn: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"

    async def migrate() -> None:
        async with pg.PostgresMessageStore(pg_dsn, schema=name) as store:
            await store.migrate()

    async def drop() -> None:
        async with pg.PostgresMessageStore(pg_dsn, schema=name) as store:
            await store.drop_schema()

    asyncio.run(migrate())
    yield name
    asyncio.run(drop())


@pytest.fixture
def store_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"cli_store_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(STORE_WORKER.replace("COUNT", str(COUNT)))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def _send_with_store(redis_url: str, prefix: str, dsn: str, schema: str) -> None:
    async def main() -> None:
        client = await real_redis(redis_url)
        async with pg.PostgresMessageStore(dsn, schema=schema) as store:
            coord = RedisMessageCoordinator(client, key_prefix=prefix, store=store)
            try:
                for n in range(COUNT):
                    msg = AgentMessage(
                        sender=SENDER,
                        recipient=AGENT,
                        message_type=MessageType.REQUEST,
                        payload={"n": n},
                    )
                    assert (await coord.send_message(SENDER, AGENT, msg)).delivered
            finally:
                await coord.aclose()
        await client.aclose()

    asyncio.run(main())


def _wipe(redis_url: str, prefix: str) -> None:
    async def main() -> None:
        client = await real_redis(redis_url)
        try:
            await delete_prefix(client, prefix)
        finally:
            await client.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("how", ["option", "environment"])
def test_cli_worker_settles_in_the_store_and_restore_reenqueues_nothing(
    runner: CliRunner,
    cli,
    redis_url: str,
    prefix: str,
    pg_dsn: str,
    schema: str,
    store_module: str,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    _send_with_store(redis_url, prefix, pg_dsn, schema)
    monkeypatch.setenv("TTA_COORD_POSTGRES_SCHEMA", schema)
    args = ["--redis-url", redis_url, "--key-prefix", prefix, "worker", f"{store_module}:factory"]
    if how == "option":
        args += ["--store-dsn", pg_dsn]
    else:
        monkeypatch.setenv("TTA_COORD_POSTGRES_DSN", pg_dsn)
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    module = sys.modules[store_module]
    assert sorted(module.handled) == list(range(COUNT))

    store_runner = CliRunner()
    history = store_runner.invoke(pg_cli.app, ["history", str(AGENT), "--dsn", pg_dsn])
    assert history.exit_code == 0, history.output
    lines = [line for line in history.output.splitlines() if str(AGENT) in line]
    assert len(lines) == COUNT, history.output
    assert all("  acked  " in line for line in lines), history.output

    _wipe(redis_url, prefix)  # a Redis loss
    monkeypatch.setenv("TTA_COORD_REDIS_URL", redis_url)
    monkeypatch.setenv("TTA_COORD_KEY_PREFIX", prefix)
    restore = store_runner.invoke(pg_cli.app, ["restore", "--dsn", pg_dsn])
    assert restore.exit_code == 0, restore.output
    assert "restored 0 messages" in restore.output
    assert type(module.stores[0]).__name__ == "PostgresMessageStore"


def test_store_dsn_cannot_reach_a_worker_built_already(
    runner: CliRunner, cli, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"cli_built_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        "import fakeredis.aioredis\n"
        "from tta_agent_coordination import AgentId, RedisMessageCoordinator\n"
        "from tta_agent_coordination.runtime.worker import AgentWorker\n"
        "coord = RedisMessageCoordinator(fakeredis.aioredis.FakeRedis())\n"
        "worker = AgentWorker(coord, None, AgentId('built'))\n"
    )
    monkeypatch.chdir(tmp_path)
    try:
        result = runner.invoke(
            cli,
            [
                "--redis-url",
                redis_url,
                "worker",
                f"{name}:worker",
                "--store-dsn",
                "postgresql://x@h/db",
            ],
        )
    finally:
        sys.modules.pop(name, None)
    assert result.exit_code == 2, result.output
    assert "--store-dsn cannot reach it" in result.output
