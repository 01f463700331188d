"""`tta-coord exporter`: the deployment-wide view, printed once or served until SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tta_agent_coordination import AgentId
from tta_agent_coordination.testing import free_port

from .helpers import dead_letter, metric_value, send


def test_once_prints_every_queue(runner, cli, redis_url, prefix) -> None:
    send(redis_url, prefix, AgentId("expa", "one"), 2)
    dead_letter(redis_url, prefix, AgentId("expb", "two"), 1)
    args = ["--redis-url", redis_url, "--key-prefix", prefix, "exporter", "--once"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    text = result.stdout
    one = {"agent_type": "expa", "queue": "expa:one"}
    two = {"agent_type": "expb", "queue": "expb:two"}
    assert metric_value(text, "tta_coord_queue_ready", priority="normal", **one) == 2
    assert metric_value(text, "tta_coord_queue_depth", **one) == 2
    assert metric_value(text, "tta_coord_dead_letters", **two) == 1
    assert metric_value(text, "tta_coord_queue_depth", **two) == 0
    last = "tta_coord_metrics_last_refresh_timestamp_seconds"
    assert metric_value(text, last, part="registry") is not None


def test_without_the_extra(runner, cli, redis_url, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tta_agent_coordination.observability.prometheus", None)
    result = runner.invoke(cli, ["--redis-url", redis_url, "exporter", "--once"])
    assert result.exit_code == 2, result.output
    assert "tta-agent-coordination[prometheus]" in result.stderr


def test_port_in_use_is_a_usage_error(runner, cli, redis_url, prefix) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["--redis-url", redis_url, "--key-prefix", prefix, "exporter", "--port", str(port)]
        result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "cannot serve metrics on 127.0.0.1" in result.stderr


def _scrape(port: int, want: str, limit_s: float = 30.0) -> str:
    deadline = time.monotonic() + limit_s
    text = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            text = ""
        if want in text:
            return text
        time.sleep(0.1)
    pytest.fail(f"{want!r} never appeared in the exporter's output:\n{text}")


def test_serves_until_sigterm(redis_url, prefix) -> None:
    send(redis_url, prefix, AgentId("expc", "three"), 1)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTA_COORD_")}
    args = ["--redis-url", redis_url, "--key-prefix", prefix, "exporter"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tta_agent_coordination.cli", *args, "--port", str(port)],
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        text = _scrape(port, 'queue="expc:three"')
        queue = {"agent_type": "expc", "queue": "expc:three"}
        assert metric_value(text, "tta_coord_queue_depth", **queue) == 1
        send(redis_url, prefix, AgentId("expc", "three"), 1)
        # Refreshed by the next round (--interval, 15 s by default, is not waited for:
        # the second send is checked with --once elsewhere); the process stops on SIGTERM.
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    assert b"exporter_stopped" in stderr
