"""The shipped Grafana board and alert rules use only metric names the exporter exposes.

After a small run (a request answered, a message dead-lettered, a shared breaker open,
an agent registered), every name the board's and the rules' PromQL references must be a
sample name of the exporter's registry; ``promtool check rules`` runs when installed.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakeredis import FakeAsyncRedis, FakeServer
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    MessageType,
    PermanentError,
    RedisMessageCoordinator,
)
from tta_agent_coordination.observability.deployment import DeploymentReader
from tta_agent_coordination.observability.prometheus import PrometheusMetrics
from tta_agent_coordination.observability.refresher import MetricsRefresher
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.redis.breaker_store import RedisBreakerStore
from tta_agent_coordination.resilience import CircuitBreaker, CircuitBreakerConfig
from tta_agent_coordination.runtime.worker import AgentWorker

DOCS = Path(__file__).resolve().parents[3] / "docs"
BOARD = DOCS / "grafana" / "tta-agent-coordination.json"
ALERTS = DOCS / "prometheus" / "alerts.yml"
SENDER = AgentId("docs", "sender")
AGENT = AgentId("docsagent", "a1")

_NAME = re.compile(r"\btta_coord_[a-z0-9_]+\b")


def board_exprs() -> list[str]:
    """Every PromQL of the board: panel targets and template-variable queries."""
    board = json.loads(BOARD.read_text())
    exprs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "definition") and isinstance(value, str):
                    exprs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(board)
    return exprs


def alert_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


async def exposed_names(client, key_prefix: str) -> set[str]:
    """The sample names the exporter shows after a small run."""
    metrics = PrometheusMetrics()
    coordinator = RedisMessageCoordinator(
        client, key_prefix=key_prefix, metrics=metrics, backoff_base=0.01
    )
    registry = RedisAgentRegistry(client, key_prefix=key_prefix, coordinator=coordinator)
    breaker = CircuitBreaker(
        "docs", CircuitBreakerConfig(failure_threshold=1), RedisBreakerStore(client, key_prefix)
    )
    metrics.track_breaker(breaker)
    worker = AgentWorker(coordinator, registry, AGENT, poll_interval=0.05, grace_period=1.0)
    metrics.track_worker(worker)
    failed = asyncio.Event()

    @worker.on_request()
    async def answer(ctx) -> int:
        return 1

    @worker.on_event()
    async def fail(ctx) -> None:
        if ctx.attempts == 1:
            raise RuntimeError("once more")  # retried
        failed.set()
        raise PermanentError("no")  # then dead-lettered

    async def boom() -> None:
        raise ConnectionError("down")

    try:
        with pytest.raises(ConnectionError):
            await breaker.call(boom)
        async with worker:
            await coordinator.request(SENDER, AGENT, {}, timeout=10)
            event = AgentMessage(sender=SENDER, recipient=AGENT, message_type=MessageType.EVENT)
            await coordinator.send_message(SENDER, AGENT, event)
            await asyncio.wait_for(failed.wait(), 10)
            await MetricsRefresher(
                metrics, DeploymentReader(client, coordinator), registry=registry
            ).refresh()
        # And a measurement that fails (Redis unreachable).
        down = FakeServer()
        down.connected = False
        broken = FakeAsyncRedis(server=down)
        broken_coordinator = RedisMessageCoordinator(broken, key_prefix=key_prefix)
        reader = DeploymentReader(broken, broken_coordinator)
        assert not await MetricsRefresher(metrics, reader, breakers=False).refresh()
        await broken_coordinator.aclose()
    finally:
        await registry.aclose()
        await coordinator.aclose()
    text = generate_latest(metrics.registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_the_board_and_the_rules_parse() -> None:
    assert len(board_exprs()) >= 15
    assert len(alert_exprs()) >= 4
    alerts = {
        rule["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for rule in g["rules"]
    }
    assert {
        "TtaCoordQueueStalled",
        "TtaCoordDeadLettersGrowing",
        "TtaCoordBreakerOpen",
        "TtaCoordNoLiveInstance",
    } <= alerts
    for expr in [*board_exprs(), *alert_exprs()]:
        assert _NAME.search(expr), f"no tta_coord metric in {expr!r}"


async def test_every_referenced_metric_is_exposed(coordination_redis, key_prefix) -> None:
    exposed = await exposed_names(coordination_redis, key_prefix)
    referenced = {name for expr in [*board_exprs(), *alert_exprs()] for name in _NAME.findall(expr)}
    missing = referenced - exposed
    assert not missing, f"referenced but not exposed: {sorted(missing)}"


def test_the_metrics_table_of_the_docs_is_complete() -> None:
    """docs/observability.md lists every family the exporter declares."""
    page = (DOCS / "observability.md").read_text()
    metrics = PrometheusMetrics()
    declared = {family.name for family in metrics.registry.collect()}
    # A counter family is named without _total; the docs show the sample name.
    missing = {
        name for name in declared if f"`{name}`" not in page and f"`{name}_total`" not in page
    }
    assert not missing, f"not in docs/observability.md: {sorted(missing)}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
