"""``tta-coord doctor`` reports the topology of a Cluster and of a Sentinel service."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from tta_agent_coordination.cli import build_app

pytestmark = [pytest.mark.cluster]


def doctor(url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, str]]:
    for name in list(os.environ):
        if name.startswith("TTA_COORD_"):
            monkeypatch.delenv(name)
    result = CliRunner().invoke(build_app(), ["--redis-url", url, "doctor", "--json"])
    assert result.exit_code == 0, result.output
    return {c["name"]: c for c in json.loads(result.output)["checks"]}


def test_doctor_on_the_cluster(cluster_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    checks = doctor(cluster_url, monkeypatch)
    assert checks["topology"]["status"] == "ok"
    assert checks["topology"]["detail"].startswith("cluster with 3 primaries")
    assert checks["lua"]["status"] == "ok"


def test_doctor_through_sentinel(sentinel_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    checks = doctor(sentinel_url, monkeypatch)
    assert checks["topology"]["detail"].startswith("sentinel service 'tta-coord', current primary")


def test_doctor_warns_about_a_plain_url_to_a_cluster_node(
    cluster_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = cluster_url.replace("redis+cluster://", "redis://").split(",")[0]
    checks = doctor(node, monkeypatch)
    assert checks["topology"]["status"] == "warn"
    assert "use redis+cluster://" in checks["topology"]["detail"]
