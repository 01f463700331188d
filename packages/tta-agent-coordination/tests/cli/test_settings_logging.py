from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors
import structlog

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.observability.logging import configure_logging, get_logger
from tta_agent_coordination.settings import CoordinationSettings, redact_url
from tta_agent_coordination.testing import free_port


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a developer's .env must not change what the tests see


def test_defaults_without_environment() -> None:
    settings = CoordinationSettings()
    assert settings.redis_url is None
    assert settings.key_prefix == "ao"
    assert settings.log_level == "INFO"
    assert settings.json_logs is False
    assert settings.concurrency is None  # the worker's adaptive default
    assert "concurrency" not in settings.worker_options()


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTA_COORD_REDIS_URL", "redis://example:6380/3")
    monkeypatch.setenv("TTA_COORD_KEY_PREFIX", "app")
    monkeypatch.setenv("TTA_COORD_LOG_LEVEL", "debug")
    monkeypatch.setenv("TTA_COORD_JSON_LOGS", "true")
    monkeypatch.setenv("TTA_COORD_CONCURRENCY", "4")
    monkeypatch.setenv("TTA_COORD_SOCKET_TIMEOUT_S", "none")
    settings = CoordinationSettings()
    assert settings.redis_url == "redis://example:6380/3"
    assert settings.key_prefix == "app"
    assert settings.log_level == "DEBUG"
    assert settings.json_logs is True
    assert settings.concurrency == 4
    assert settings.socket_timeout_s is None


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTA_COORD_KEY_PREFIX", "env")
    assert CoordinationSettings(key_prefix="arg").key_prefix == "arg"


def test_reads_a_dotenv_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("TTA_COORD_KEY_PREFIX=fromfile\nOTHER=1\n")
    monkeypatch.chdir(tmp_path)
    assert CoordinationSettings().key_prefix == "fromfile"


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"redis_url": "http://localhost:6379"}, "unsupported Redis URL"),
        ({"redis_url": "redis://localhost:notaport/0"}, "malformed Redis URL"),
        ({"redis_url": "redis://localhost:6379/abc"}, "is not a number"),
        ({"key_prefix": "has space"}, "invalid key prefix"),
        ({"log_level": "loud"}, "log level must be one of"),
        ({"concurrency": 0}, "concurrency (TTA_COORD_CONCURRENCY): must be >= 1"),
        (
            {"visibility_timeout_s": 0},
            "visibility_timeout_s (TTA_COORD_VISIBILITY_TIMEOUT_S): must be > 0",
        ),
        ({"max_connections": "many"}, "max_connections (TTA_COORD_MAX_CONNECTIONS)"),
    ],
)
def test_invalid_values_raise_configuration_error(values: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid settings") as info:
        CoordinationSettings(**values)
    assert fragment in str(info.value)


def test_every_problem_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTA_COORD_CONCURRENCY", "zero")
    with pytest.raises(ConfigurationError) as info:
        CoordinationSettings(log_level="loud")
    assert "TTA_COORD_CONCURRENCY" in str(info.value)
    assert "TTA_COORD_LOG_LEVEL" in str(info.value)


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("TTA_COORD_SOCKET_TIMEOUT_S", "-1", "must be > 0, got -1.0"),
        ("TTA_COORD_POOL_TIMEOUT_S", "0", "must be > 0, got 0.0"),
        ("TTA_COORD_GRACE_PERIOD_S", "-2", "must be >= 0, got -2.0"),
        ("TTA_COORD_HEALTH_CHECK_INTERVAL_S", "-1", "must be >= 0, got -1.0"),
        ("TTA_COORD_MAX_CONNECTIONS", "0", "must be >= 1, got 0"),
    ],
)
def test_a_value_out_of_range_names_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    # Issue 21 item 6: TTA_COORD_SOCKET_TIMEOUT_S=-1 was reported without the variable.
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        CoordinationSettings()
    assert f"({variable}): {fragment}" in str(info.value)


def test_password_is_never_shown() -> None:
    url = "redis://user:s3cret@host:6379/0"
    assert redact_url(url) == "redis://user:***@host:6379/0"
    with pytest.raises(ConfigurationError) as info:
        CoordinationSettings(redis_url="http://user:s3cret@host")
    assert "s3cret" not in str(info.value)
    assert CoordinationSettings(redis_url=url).redacted_url == redact_url(url)


def test_redis_client_needs_a_url() -> None:
    with pytest.raises(ConfigurationError, match="TTA_COORD_REDIS_URL"):
        CoordinationSettings().redis_client()


async def test_redis_client_fails_fast_on_a_closed_port() -> None:
    settings = CoordinationSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = settings.redis_client()
    assert isinstance(client, aioredis.Redis)  # a plain URL: not a Cluster client
    try:
        # No retries inside redis-py: the breaker, not the client, decides about outages.
        retry = client.connection_pool.connection_kwargs["retry"]
        assert retry.get_retries() == 0
        assert client.connection_pool.max_connections == settings.max_connections
        with pytest.raises(redis_errors.ConnectionError):
            await client.ping()
    finally:
        await client.aclose()


def test_configure_logging_json_lines_parse() -> None:
    stream = io.StringIO()
    configure_logging("info", json=True, stream=stream)
    log = get_logger("tests.cli", queue="a:default")
    log.info("hello", count=3)
    log.debug("dropped")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["hello", "failed"]
    assert lines[0]["queue"] == "a:default"
    assert lines[0]["count"] == 3
    assert lines[0]["level"] == "info"
    assert "timestamp" in lines[0]
    assert lines[1]["exception"][0]["exc_type"] == "ValueError"


def test_configure_logging_console_and_level() -> None:
    stream = io.StringIO()
    configure_logging("WARNING", stream=stream)
    log = get_logger("tests.cli")
    log.info("quiet")
    log.warning("loud", key="value")
    text = stream.getvalue()
    assert "quiet" not in text
    assert "loud" in text
    assert "key=value" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_configure_logging_follows_module_level_loggers() -> None:
    stream = io.StringIO()
    lazy = structlog.get_logger("tta_agent_coordination.resilience")  # as the library does
    configure_logging("INFO", json=True, stream=stream)
    lazy.info("from_library")
    assert json.loads(stream.getvalue())["event"] == "from_library"


@pytest.mark.parametrize("as_json", [True, False])
def test_logged_tracebacks_never_show_frame_locals(as_json: bool) -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=as_json, stream=stream)
    log = get_logger("tests.cli")

    def handler() -> None:
        api_key = "-".join(["sk", "secret", "0123456789"])  # only a local holds it whole
        raise ConnectionError(f"llm down ({len(api_key)})")

    try:
        handler()
    except ConnectionError:
        log.exception("handler_failed")
    text = stream.getvalue()
    assert "handler_failed" in text
    assert "ConnectionError" in text
    assert "llm down (20)" in text
    assert "sk-secret" not in text
    assert "\x1b[" not in text  # not a terminal: no colour codes, in the traceback too
    if as_json:
        frames = json.loads(text)["exception"][0]["frames"]
        assert frames
        assert all("locals" not in frame for frame in frames)


def test_configure_logging_rejects_unknown_level() -> None:
    with pytest.raises(ConfigurationError, match="unknown log level"):
        configure_logging("chatty")


def test_the_library_does_not_import_the_cli() -> None:
    code = (
        "import sys, tta_agent_coordination;"
        "bad = [m for m in ('typer', 'tta_agent_coordination.cli') if m in sys.modules];"
        "assert not bad, bad"
    )

    async def run() -> int:
        import sys

        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
        return await proc.wait()

    assert asyncio.run(run()) == 0


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://host:6379/0?password=s3cret", "redis://host:6379/0?password=***"),
        (
            "redis://host/0?socket_timeout=5&PASSWORD=s3cret&db=1",
            "redis://host/0?socket_timeout=5&PASSWORD=***&db=1",
        ),
        ("redis://u:a@host/0?password=b", "redis://u:***@host/0?password=***"),
        ("redis://host/0?socket_timeout=5", "redis://host/0?socket_timeout=5"),
    ],
)
def test_redact_url_hides_a_password_in_the_query_string(url, shown):
    assert redact_url(url) == shown
    assert "s3cret" not in CoordinationSettings(redis_url=url).redacted_url


# --- the message store settings (issue 21 item 1) ----------------------------------------


def test_store_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTA_COORD_POSTGRES_DSN", "postgresql://app@db/app")
    monkeypatch.setenv("TTA_COORD_POSTGRES_SCHEMA", "agents")
    monkeypatch.setenv("TTA_COORD_STORE_DURABILITY", "SYNC")
    settings = CoordinationSettings()
    assert settings.postgres_dsn == "postgresql://app@db/app"
    assert settings.postgres_schema == "agents"
    assert settings.store_durability == "sync"


def test_a_bad_durability_names_its_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"TTA_COORD_STORE_DURABILITY.*async or sync"):
        CoordinationSettings(store_durability="eventually")


async def test_build_coordinator_attaches_and_owns_the_configured_store() -> None:
    import fakeredis.aioredis

    pytest.importorskip("tta_agent_coordination_postgres")
    from tta_agent_coordination_postgres import PostgresMessageStore

    client = fakeredis.aioredis.FakeRedis()
    assert CoordinationSettings().build_store() is None
    assert CoordinationSettings().build_coordinator(client).store is None
    settings = CoordinationSettings(
        postgres_dsn="postgresql://app@127.0.0.1:1/app", postgres_schema="agents"
    )
    store = settings.build_store()
    assert isinstance(store, PostgresMessageStore)
    assert store.schema == "agents"
    coord = settings.build_coordinator(client)
    assert isinstance(coord.store, PostgresMessageStore)
    registry = settings.build_registry(client, coordinator=coord)
    assert registry._core.store is coord.store  # pyright: ignore[reportPrivateUsage]
    assert settings.build_coordinator(client, store=None).store is None
    await registry.aclose()
    await coord.aclose()  # closes the store it was built with (never opened here)
    await client.aclose()
