"""`tta-coord worker --metrics-port`: the worker serves Prometheus metrics while it runs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tta_agent_coordination import AgentId
from tta_agent_coordination.testing import free_port

from .helpers import metric_value, send

METRICS_WORKER = """
import asyncio
import os
import urllib.request

from tta_agent_coordination import AgentId
from tta_agent_coordination.runtime.worker import AgentWorker

scrapes = []


def scrape():
    url = f"http://127.0.0.1:{os.environ['METRICS_PORT']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


async def factory(coordinator, registry):
    worker = AgentWorker(coordinator, registry, AgentId("climetrics"), concurrency=1)
    handled = []

    @worker.on_request()
    async def handle(ctx):
        handled.append(ctx.payload["n"])
        if len(handled) == 2:
            scrapes.append(await asyncio.to_thread(scrape))
            worker.request_stop("test done")

    return worker
"""


@pytest.fixture
def metrics_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"cli_metrics_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(METRICS_WORKER)
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def test_worker_serves_metrics(runner, cli, redis_url, prefix, metrics_module, monkeypatch) -> None:
    port = free_port()
    monkeypatch.setenv("METRICS_PORT", str(port))
    send(redis_url, prefix, AgentId("climetrics"), 2)
    args = ["--redis-url", redis_url, "--key-prefix", prefix, "worker", f"{metrics_module}:factory"]
    options = ["--metrics-port", str(port), "--metrics-addr", "127.0.0.1"]
    result = runner.invoke(cli, [*args, *options, "--metrics-interval", "0.1"])
    assert result.exit_code == 0, result.output
    (text,) = sys.modules[metrics_module].scrapes
    # sent to the type: received from the type queue by the worker climetrics:default
    queue = 'agent_type="climetrics",queue="climetrics"'
    worker = 'agent_type="climetrics",queue="climetrics:default"'
    assert f"tta_coord_messages_received_total{{{queue}}} 2.0" in text
    assert f'tta_coord_workers{{{worker},state="running"}} 1.0' in text
    assert f"tta_coord_worker_received_total{{{worker}}} 2.0" in text
    # Durations: the first handler had finished when the second scraped; both waited.
    labels = {"agent_type": "climetrics", "queue": "climetrics:default"}
    type_queue = {"agent_type": "climetrics", "queue": "climetrics"}
    handler = "tta_coord_handler_duration_seconds_count"
    assert metric_value(text, handler, outcome="success", **labels) == 1
    assert metric_value(text, "tta_coord_queue_wait_seconds_count", **type_queue) == 2
    # Its own queue is measured at start and every --metrics-interval.
    assert metric_value(text, "tta_coord_queue_ready", priority="low", **labels) == 0
    age = "tta_coord_queue_oldest_ready_age_seconds"
    assert metric_value(text, age, priority="low", **labels) == 0
    assert metric_value(text, "tta_coord_dead_letters", **labels) == 0
    assert metric_value(text, "tta_coord_breaker_state", breaker="redis", state="closed") == 1
    assert 'tta_coord_metrics_refresh_errors_total{part="queues"}' not in text


def test_metrics_port_in_use_is_a_usage_error(runner, cli, redis_url, metrics_module) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(
            cli,
            [
                *("--redis-url", redis_url, "worker", f"{metrics_module}:factory"),
                *("--metrics-port", str(port), "--metrics-addr", "127.0.0.1"),
            ],
        )
    assert result.exit_code == 2, result.output
    assert "cannot serve metrics on 127.0.0.1" in result.stderr


def test_metrics_port_without_the_extra(
    runner, cli, redis_url, metrics_module, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "tta_agent_coordination.observability.prometheus", None)
    result = runner.invoke(
        cli,
        ["--redis-url", redis_url, "worker", f"{metrics_module}:factory", "--metrics-port", "0"],
    )
    assert result.exit_code == 2, result.output
    assert "tta-agent-coordination[prometheus]" in result.stderr
