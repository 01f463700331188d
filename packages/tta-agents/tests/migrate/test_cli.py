"""``tta-coord tta legacy-report`` and ``tta-coord tta migrate-keys`` against the real Redis."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import structlog
from typer.testing import CliRunner

from tta_agent_coordination import RedisMessageCoordinator
from tta_agent_coordination.cli import build_app
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.testing import (
    DEFAULT_TEST_REDIS_URL,
    RealRedisUnavailableError,
    delete_prefix,
    real_redis,
    unique_prefix,
)
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail

from .conftest import LegacyWriter, drain, write_deployment

T = TypeVar("T")
WBA_ID = AgentId("world_builder", "w1")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("TTA_COORD_") and name != "TTA_COORD_TEST_REDIS_URL":
            monkeypatch.delenv(name)
    saved = structlog.get_config()  # the root command configures structlog globally
    yield
    structlog.reset_defaults()
    structlog.configure(**saved)


@pytest.fixture(scope="module")
def redis_url() -> str:
    url = os.environ.get("TTA_COORD_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)

    async def check() -> None:
        await (await real_redis(url)).aclose()

    try:
        asyncio.run(check())
    except RealRedisUnavailableError as exc:
        skip_or_fail(str(exc))
    return url


def _with_redis(url: str, fn: Callable[[Any], Awaitable[T]]) -> T:
    async def main() -> T:
        client = await real_redis(url)
        try:
            return await fn(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


@pytest.fixture
def prefixes(redis_url: str) -> Iterator[tuple[str, str]]:
    legacy, new = unique_prefix("legacy"), unique_prefix("new")
    yield legacy, new

    async def clean(client: Any) -> None:
        await delete_prefix(client, legacy)
        await delete_prefix(client, new)

    _with_redis(redis_url, clean)


def _invoke(redis_url: str, new_prefix: str, *args: str) -> Any:
    runner = CliRunner()
    return runner.invoke(
        build_app(), ["--redis-url", redis_url, "--key-prefix", new_prefix, "tta", *args]
    )


def test_the_tta_group_comes_from_the_entry_point() -> None:
    result = CliRunner().invoke(build_app(), ["tta", "--help"])
    assert result.exit_code == 0, result.output
    assert "legacy-report" in result.output
    assert "migrate-keys" in result.output


def test_report_dry_run_migrate_and_rerun(redis_url: str, prefixes: tuple[str, str]) -> None:
    legacy, new = prefixes

    async def write(client: Any) -> None:
        await write_deployment(LegacyWriter(client, legacy))

    _with_redis(redis_url, write)

    report = _invoke(redis_url, new, "legacy-report", "--legacy-prefix", legacy, "--json")
    assert report.exit_code == 0, report.output
    data = json.loads(report.stdout)
    assert {q["agent"] for q in data["queues"]} == {
        "input_processor:default",
        "input_processor:spiel:1",
        "world_builder:w1",
    }
    assert data["subscriptions"] == {"world_builder:w1": ["event", "request"]}
    assert (data["messages"], data["migrated"]) == (12, 0)

    text = _invoke(redis_url, new, "legacy-report", "--legacy-prefix", legacy)
    assert text.exit_code == 0, text.output
    assert "movable messages: 12; already migrated: 0" in text.stdout
    assert "5 entries unparsable" not in text.stdout  # problems go to stderr
    assert "4 entries unparsable" in text.stderr

    plan = _invoke(redis_url, new, "migrate-keys", "--legacy-prefix", legacy, "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert "would move 12 messages, 1 subscription sets and 0 saved agent states" in plan.stdout

    moved = _invoke(redis_url, new, "migrate-keys", "--legacy-prefix", legacy, "--json")
    assert moved.exit_code == 0, moved.output
    result = json.loads(moved.stdout)
    assert (result["dry_run"], result["moved"], len(result["unmovable"])) == (False, 12, 4)

    again = _invoke(redis_url, new, "migrate-keys", "--legacy-prefix", legacy)
    assert again.exit_code == 0, again.output
    assert "moved 0 messages, 0 subscription sets" in again.stdout
    assert "4 entries left in place" in again.stderr

    async def received(client: Any) -> list[str]:
        coordinator = RedisMessageCoordinator(client, key_prefix=new)
        try:
            return [m for m, _, _ in await drain(coordinator, WBA_ID)]
        finally:
            await coordinator.aclose()

    assert len(_with_redis(redis_url, received)) == 8


def test_an_unreachable_server_is_one_error_line(prefixes: tuple[str, str]) -> None:
    result = _invoke("redis://127.0.0.1:1/0", prefixes[1], "migrate-keys")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error:")
    assert "Traceback" not in result.output


def test_rename_moves_a_refused_name_and_a_bad_pair_is_a_usage_error(
    redis_url: str, prefixes: tuple[str, str]
) -> None:
    legacy, new = prefixes

    async def write(client: Any) -> None:
        await LegacyWriter(client, legacy).send(("input_processor", "spiel:1"), "m-renamed-1")

    _with_redis(redis_url, write)
    bad = _invoke(redis_url, new, "migrate-keys", "--legacy-prefix", legacy, "--rename", "x")
    assert bad.exit_code == 2
    assert "--rename takes OLD=NEW" in bad.stderr
    moved = _invoke(
        redis_url,
        new,
        "migrate-keys",
        "--legacy-prefix",
        legacy,
        "--rename",
        "input_processor:spiel:1=input_processor:spiel-1",
    )
    assert moved.exit_code == 0, moved.output
    assert "input_processor:spiel:1 -> input_processor:spiel-1: moved 1 ready" in moved.stdout, (
        moved.stderr
    )
