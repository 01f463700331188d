"""Fixtures of the CLI tests: the real Redis URL, a key prefix cleaned up after, a runner."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog
import typer
from typer.testing import CliRunner

from tta_agent_coordination.cli import build_app


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
