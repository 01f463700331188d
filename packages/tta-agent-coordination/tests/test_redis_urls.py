"""Cluster and Sentinel URLs: parsing, the clients they build, errors and redaction."""

from __future__ import annotations

import json
import os

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from tta_agent_coordination.cli import build_app
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.redis.pool import WaitingSentinelConnectionPool
from tta_agent_coordination.redis.topology import Topology
from tta_agent_coordination.redis.urls import parse_redis_url, redact_url
from tta_agent_coordination.settings import CoordinationSettings


def test_a_cluster_url_lists_its_startup_nodes() -> None:
    target = parse_redis_url("redis+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002")
    assert target.kind == "cluster"
    assert target.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002))
    assert (target.username, target.password, target.ssl) == ("u", "p@ss", False)
    assert parse_redis_url("rediss+cluster://h:1/0").ssl


def test_a_sentinel_url_names_its_service_and_database() -> None:
    target = parse_redis_url("redis+sentinel://:secret@s1:26380,s2/mymaster/3?sentinel_password=sp")
    assert target.kind == "sentinel"
    assert target.nodes == (("s1", 26380), ("s2", 26379))
    assert (target.service, target.db) == ("mymaster", 3)
    assert (target.username, target.password, target.sentinel_password) == (None, "secret", "sp")


def test_a_plain_url_is_one_server() -> None:
    target = parse_redis_url("redis://127.0.0.1:6379/4")
    assert (target.kind, target.db, target.nodes) == ("single", 4, ())


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://h:1", "unsupported Redis URL"),
        ("redis+sentinel://h:26379", "names no Sentinel service"),
        ("redis+sentinel://h:26379/", "names no Sentinel service"),
        ("redis+sentinel://h:26379/svc/x", "database 'x' is not a number"),
        ("redis+sentinel://h:26379/svc/1/2", "expected /service_name[/db]"),
        ("redis+cluster://h:7000/2", "database 0 only"),
        ("redis+cluster://h:7000,,h2:7001", "empty one"),
        ("redis+cluster://h:70x0", "port '70x0'"),
        ("redis+cluster://h:99999", "port '99999'"),
        ("redis+cluster://:7000", "names no host"),
        ("redis+cluster://h:7000?foo=1", "unknown option(s) foo"),
        ("redis+sentinel://h/svc?password=x", "unknown option(s) password"),
        ("redis://h:1/abc", "not a number"),
    ],
)
def test_a_bad_url_says_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match="Redis URL") as caught:
        parse_redis_url(url)
    assert says in str(caught.value)
    with pytest.raises(ConfigurationError, match="TTA_COORD_REDIS_URL"):
        CoordinationSettings(redis_url=url)


def test_passwords_never_show_in_errors() -> None:
    with pytest.raises(ConfigurationError) as caught:
        CoordinationSettings(redis_url="redis+sentinel://user:hunter2@h:1?sentinel_password=sp2")
    assert "hunter2" not in str(caught.value)
    assert "sp2" not in str(caught.value)
    assert "user:***@h:1" in str(caught.value)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12))
def test_redaction_hides_every_password(secret: str) -> None:
    for url in (
        f"redis+cluster://u:{secret}@h1:1,h2:2",
        f"redis+sentinel://h:1/svc?sentinel_password={secret}",
        f"rediss://:{secret}@h:1/0",
    ):
        shown = redact_url(url)
        assert f":{secret}@" not in shown
        assert f"={secret}" not in shown
        assert "***" in shown


async def test_settings_build_a_cluster_client_and_a_sentinel_client() -> None:
    settings = CoordinationSettings(redis_url="redis+cluster://127.0.0.1:1,127.0.0.1:2")
    assert settings.redis_target.kind == "cluster"
    cluster = settings.redis_client(decode_responses=True, single_connection_client=True)
    assert isinstance(cluster, aioredis.RedisCluster)
    await cluster.aclose()
    sentinel = CoordinationSettings(
        redis_url="redis+sentinel://127.0.0.1:1/svc/2", max_connections=7, pool_timeout_s=3
    ).redis_client()
    assert isinstance(sentinel, aioredis.Redis)
    pool = sentinel.connection_pool
    assert isinstance(pool, WaitingSentinelConnectionPool)
    assert (pool.service_name, pool.max_connections, pool.timeout) == ("svc", 7, 3)
    assert pool.connection_kwargs["db"] == 2
    await sentinel.aclose()


def test_topology_lines() -> None:
    assert Topology("single", ("h:1",)).describe() == "single server h:1"
    assert "use redis+cluster://" in Topology("single", ("h:1",), cluster_node=True).describe()
    assert Topology("cluster", ("a:1",), replicas=1).describe() == (
        "cluster with 1 primary (a:1) and 1 replica"
    )
    assert Topology("sentinel", ("p:1",), service="s").describe() == (
        "sentinel service 's', current primary p:1"
    )


def test_the_cli_refuses_a_sentinel_url_without_service(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TTA_COORD_"):
            monkeypatch.delenv(name)
    result = CliRunner().invoke(
        build_app(), ["--redis-url", "redis+sentinel://u:topsecret@127.0.0.1:1", "doctor"]
    )
    assert result.exit_code == 2
    assert "names no Sentinel service" in result.output
    assert "topsecret" not in result.output


def test_the_cli_hides_the_password_of_an_unreachable_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("TTA_COORD_"):
            monkeypatch.delenv(name)
    result = CliRunner().invoke(
        build_app(),
        ["--redis-url", "redis+cluster://u:topsecret@127.0.0.1:1", "doctor", "--json"],
    )
    assert result.exit_code == 1
    assert "topsecret" not in result.output
    checks = {c["name"]: c["status"] for c in json.loads(result.output)["checks"]}
    assert checks["connect"] == "fail"
