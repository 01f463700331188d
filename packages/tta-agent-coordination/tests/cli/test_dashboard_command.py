"""``tta-coord dashboard``: options, a missing extra, an unreachable Redis, and serving."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import typer
from typer.testing import CliRunner

from tta_agent_coordination.cli import dashboard as dashboard_cli
from tta_agent_coordination.testing import unique_prefix


def test_help_names_the_options(runner: CliRunner, cli: typer.Typer) -> None:
    result = runner.invoke(cli, ["dashboard", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    options = ("--host", "--port", "--token", "--store-dsn", "--plan-instance", "127.0.0.1")
    for option in (*options, "8088"):
        assert option in result.stdout
    assert "TTA_COORD_DASHBOARD_TOKEN" in result.stdout


def test_without_the_extra_it_says_how_to_install_it(
    runner: CliRunner, cli: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard_cli, "_installed", lambda: False)
    result = runner.invoke(cli, ["dashboard"])
    assert result.exit_code == 2
    assert "tta-agent-coordination[dashboard]" in result.stderr


def test_an_unreachable_redis_fails_before_serving(runner: CliRunner, cli: typer.Typer) -> None:
    result = runner.invoke(
        cli, ["--redis-url", "redis://127.0.0.1:1/0", "dashboard", "--host", "0.0.0.0"]
    )
    assert result.exit_code == 1
    assert "binds 0.0.0.0" in result.stderr
    assert "cannot reach Redis" in result.stderr


def test_an_invalid_plan_instance_fails_before_serving(
    runner: CliRunner, cli: typer.Typer, redis_url: str
) -> None:
    result = runner.invoke(
        cli,
        ["--redis-url", redis_url, "--key-prefix", unique_prefix(), "dashboard",
         "--plan-instance", "no spaces"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "invalid runtime instance 'no spaces'" in result.stderr


def test_serves_read_only_on_the_loopback_until_interrupted(redis_url: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTA_COORD_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "tta_agent_coordination.cli", "--redis-url", redis_url,
         "--key-prefix", unique_prefix(), "dashboard", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        page = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not page:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/queues", timeout=2) as r:
                    page = r.read().decode()
            except OSError:
                time.sleep(0.2)
        assert 'id="mode">read-only<' in page
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert out == ""  # logs go to stderr, never stdout
    assert "dashboard_started" in err
