"""User mistakes give one line and the right exit code; the worker command; plugins."""

from __future__ import annotations

import sys
import textwrap
import types
from collections.abc import Iterator
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest
import redis.exceptions as redis_errors
import typer
from typer.testing import CliRunner

from tta_agent_coordination import AgentId
from tta_agent_coordination.cli import CliUsageError, build_app, plugins
from tta_agent_coordination.cli.app import DEMO_MODULE
from tta_agent_coordination.cli.errors import handle_errors
from tta_agent_coordination.errors import CircuitBreakerOpenError, CoordinatorUnavailableError
from tta_agent_coordination.testing import free_port

from .helpers import send, stats


def assert_one_line_error(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert fragment in errors[0]


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://127.0.0.1:6379", "unsupported Redis URL"),
        ("redis://127.0.0.1:port/0", "malformed Redis URL"),
        ("redis://127.0.0.1:6379/zero", "is not a number"),
    ],
)
def test_bad_url_is_a_usage_error(runner: CliRunner, cli: typer.Typer, url, fragment) -> None:
    result = runner.invoke(cli, ["--redis-url", url, "agents"])
    assert_one_line_error(result, 2, fragment)


def test_password_is_not_printed(runner: CliRunner, cli: typer.Typer) -> None:
    result = runner.invoke(cli, ["--redis-url", "http://u:hunter2@h", "queues"])
    assert result.exit_code == 2
    assert "hunter2" not in result.output


def test_unreachable_server_is_a_runtime_error(runner: CliRunner, cli: typer.Typer) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    for command in (["agents"], ["queues"], ["dlq", "list", "a"], ["recover"], ["breakers"]):
        result = runner.invoke(cli, ["--redis-url", url, *command])
        assert_one_line_error(result, 1, f"cannot reach Redis at {url}")


def test_doctor_reports_an_unreachable_server(runner: CliRunner, cli: typer.Typer) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = runner.invoke(cli, ["--redis-url", url, "doctor", "--json"])
    assert result.exit_code == 1
    assert '"ok": false' in result.stdout
    result = runner.invoke(cli, ["doctor"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "no Redis server given" in result.stdout


def test_missing_url_says_how_to_give_one(runner: CliRunner, cli: typer.Typer) -> None:
    result = runner.invoke(cli, ["agents"])
    assert_one_line_error(result, 2, "TTA_COORD_REDIS_URL")


def test_invalid_environment_is_a_usage_error(runner: CliRunner, cli: typer.Typer) -> None:
    result = runner.invoke(cli, ["agents"], env={"TTA_COORD_CONCURRENCY": "0"})
    assert_one_line_error(result, 2, "concurrency (TTA_COORD_CONCURRENCY): must be >= 1")
    help_still_works = runner.invoke(cli, ["--help"], env={"TTA_COORD_CONCURRENCY": "0"})
    assert help_still_works.exit_code == 0


def test_bad_key_prefix_and_log_level(runner: CliRunner, cli: typer.Typer, redis_url) -> None:
    result = runner.invoke(cli, ["--redis-url", redis_url, "--key-prefix", "a b", "agents"])
    assert_one_line_error(result, 2, "invalid key prefix")
    result = runner.invoke(cli, ["--redis-url", redis_url, "--log-level", "chatty", "agents"])
    assert_one_line_error(result, 2, "log level must be one of")


@pytest.mark.parametrize(
    "command",
    [
        ["dlq", "list", "bad id!"],
        ["dlq", "replay", "a:"],
        ["dlq", "purge", "x{y}", "--yes"],
        ["recover", "no spaces"],
        ["queues", "a:b:c!"],
    ],
)
def test_malformed_agent_id_is_a_usage_error(runner, cli, redis_url, command) -> None:
    result = runner.invoke(cli, ["--redis-url", redis_url, *command])
    assert_one_line_error(result, 2, "invalid agent id")


# --- worker ----------------------------------------------------------------------------------

WORKER_MODULE = """
from tta_agent_coordination import AgentId
from tta_agent_coordination.runtime.worker import AgentWorker

handled = []
not_a_worker = 42


def wrong_signature():
    return None


def returns_junk(coordinator, registry):
    return "junk"


async def factory(coordinator, registry):
    worker = AgentWorker(coordinator, registry, AgentId("{agent_type}"), concurrency=1)

    @worker.on_request()
    async def handle(ctx):
        handled.append(ctx.payload["n"])
        if len(handled) == 2:
            worker.request_stop("test done")

    return worker
"""


@pytest.fixture
def worker_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"cli_worker_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(WORKER_MODULE.replace("{agent_type}", "cliworker"))
    monkeypatch.chdir(tmp_path)  # the command puts the working directory on sys.path
    yield name
    sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("nocolon", "expected MODULE:ATTR"),
        ("bad-name:attr", "expected MODULE:ATTR"),
        ("{m}:", "expected MODULE:ATTR"),
        ("no_such_module_xyz:worker", "no module named 'no_such_module_xyz'"),
        ("{m}:missing", "has no attribute 'missing'"),
        ("{m}:not_a_worker", "is a int, not an AgentWorker"),
        ("{m}:wrong_signature", "must accept (coordinator, registry)"),
    ],
)
def test_worker_target_mistakes(runner, cli, redis_url, worker_module, target, fragment) -> None:
    result = runner.invoke(
        cli, ["--redis-url", redis_url, "worker", target.format(m=worker_module)]
    )
    assert_one_line_error(result, 2, fragment)


def test_worker_factory_returning_junk(runner, cli, redis_url, prefix, worker_module) -> None:
    args = ["--redis-url", redis_url, "--key-prefix", prefix, "worker"]
    result = runner.invoke(cli, [*args, f"{worker_module}:returns_junk"])
    assert_one_line_error(result, 2, "returned a str, not an AgentWorker")


INSTANCE_MODULE = """
import os

import redis.asyncio as aioredis

from tta_agent_coordination import AgentId, RedisMessageCoordinator
from tta_agent_coordination.runtime.worker import AgentWorker

handled = []
client = aioredis.Redis.from_url(os.environ["INSTANCE_REDIS_URL"])
coordinator = RedisMessageCoordinator(client, key_prefix=os.environ["INSTANCE_PREFIX"])
worker = AgentWorker(coordinator, None, AgentId("cliinstance"), poll_interval=0.1)


@worker.on_request()
async def handle(ctx):
    handled.append(ctx.payload["n"])
    if len(handled) == 2:
        worker.request_stop("test done")
"""


def test_worker_runs_an_instance_until_stopped(
    runner, cli, redis_url, prefix, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"cli_instance_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(INSTANCE_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSTANCE_REDIS_URL", redis_url)
    monkeypatch.setenv("INSTANCE_PREFIX", prefix)
    agent = AgentId("cliinstance")
    send(redis_url, prefix, agent, 2)
    try:
        result = runner.invoke(cli, ["--redis-url", redis_url, "worker", f"{name}:worker"])
        assert result.exit_code == 0, result.output
        assert sorted(sys.modules[name].handled) == [0, 1]
        assert stats(redis_url, prefix, agent).unsettled == 0
    finally:
        sys.modules.pop(name, None)


def test_worker_runs_a_factory_until_stopped(runner, cli, redis_url, prefix, worker_module) -> None:
    agent = AgentId("cliworker")
    send(redis_url, prefix, agent, 2)
    args = ["--redis-url", redis_url, "--key-prefix", prefix, "worker", f"{worker_module}:factory"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert sorted(sys.modules[worker_module].handled) == [0, 1]
    after = stats(redis_url, prefix, agent)
    assert after.unsettled == 0
    assert after.dead == 0


# --- demo and plugins ------------------------------------------------------------------------


def test_demo_package_is_added_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    demo = types.ModuleType(DEMO_MODULE)
    demo.__spec__ = ModuleSpec(DEMO_MODULE, None)

    def register(app: typer.Typer) -> None:
        @app.command("demo")
        def run_demo() -> None:
            typer.echo("demo ran")

    demo.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, DEMO_MODULE, demo)
    result = CliRunner().invoke(build_app(plugins=False), ["demo"])
    assert result.exit_code == 0, result.output
    assert "demo ran" in result.stdout


def write_dist(root: Path, dist: str, entry_points: dict[str, str], module: str, code: str) -> None:
    (root / f"{module}.py").write_text(textwrap.dedent(code))
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[tta_agent_coordination.cli]\n{lines}\n")


def test_plugins_from_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    module = f"cli_plugin_{tmp_path.name.replace('-', '_')}"
    write_dist(
        tmp_path,
        "cli-test-plugin",
        {
            "hello": f"{module}:app",
            "notatyper": f"{module}:value",
            "broken": f"{module}_missing:app",
            "agents": f"{module}:app",
        },
        module,
        """
        import typer

        app = typer.Typer()
        value = 1


        @app.command()
        def greet(name: str) -> None:
            typer.echo(f"hello {name}")
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_warned", set())
    try:
        first = build_app()
        build_app()  # warnings are given once per process
        warnings = capsys.readouterr().err
        assert warnings.count("plugin 'broken'") == 1
        assert "failed to load" in warnings
        assert "plugin 'notatyper'" in warnings
        assert "not a typer.Typer" in warnings
        assert "plugin 'agents'" in warnings
        assert "is taken" in warnings

        result = CliRunner().invoke(first, ["hello", "greet", "world"])
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == "hello world"
        listing = CliRunner().invoke(first, ["--help"])
        assert "hello" in listing.stdout
    finally:
        sys.modules.pop(module, None)


# --- error mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code", "fragment"),
    [
        (CliUsageError("bad flag"), 2, "bad flag"),
        (redis_errors.AuthenticationError("WRONGPASS"), 1, "refused the credentials"),
        (redis_errors.TimeoutError("slow"), 1, "did not answer in time"),
        (CoordinatorUnavailableError("recover failed"), 1, "cannot reach Redis at redis://h/0"),
        (CircuitBreakerOpenError("redis", 3.0), 1, "try again later"),
        (redis_errors.ResponseError("NOPERM no"), 1, "Redis refused a command: NOPERM"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_errors_become_one_line(capsys, exc: BaseException, code: int, fragment: str) -> None:
    with pytest.raises(typer.Exit) as info, handle_errors("redis://h/0"):
        raise exc
    assert info.value.exit_code == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("Error: ")
    assert fragment in err
