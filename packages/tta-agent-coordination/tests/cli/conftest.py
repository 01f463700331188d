"""Fixtures of the CLI tests: the real Redis URL, a key prefix cleaned up after, a runner."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
import structlog
import typer
from typer.testing import CliRunner

from tta_agent_coordination.cli import build_app
from tta_agent_coordination.testing import (
    DEFAULT_TEST_REDIS_URL,
    RealRedisUnavailableError,
    delete_prefix,
    real_redis,
    real_redis_required,
    unique_prefix,
)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    # The root command configures structlog globally; other tests expect the session's
    # configuration (the workspace conftest's).
    saved = structlog.get_config()
    yield
    structlog.reset_defaults()
    structlog.configure(**saved)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TTA_COORD_") and name != "TTA_COORD_TEST_REDIS_URL":
            monkeypatch.delenv(name)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def cli() -> typer.Typer:
    return build_app(plugins=False)


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("TTA_COORD_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)

    async def check() -> None:
        client = await real_redis(url)
        await client.aclose()

    try:
        asyncio.run(check())
    except RealRedisUnavailableError as exc:
        if real_redis_required():
            pytest.fail(f"{exc} (CI requires the real-Redis tests to run)")
        pytest.skip(str(exc))
    return url


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    value = unique_prefix("cli")
    yield value

    async def clean() -> None:
        client = await real_redis(redis_url)
        try:
            await delete_prefix(client, value)
        finally:
            await client.aclose()

    asyncio.run(clean())
