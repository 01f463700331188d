"""Fixtures of the ``cluster`` suite: the local Redis Cluster and Sentinel setup.

``scripts/redis-cluster up`` starts them (3 primaries and 3 replicas on 7100-7105; a
primary, a replica and three Sentinels on 7110-7122) when they do not answer. Under
``CI=true`` (``TTA_COORD_REQUIRE_REAL_REDIS``) a setup that cannot start fails the run;
elsewhere the suite is skipped. Each test works under a key prefix of its own and deletes
its keys afterwards (a SCAN of every primary; nothing is ever flushed).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.settings import CoordinationSettings
from tta_agent_coordination.testing import delete_prefix, unique_prefix
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "redis-cluster"
DEFAULT_CLUSTER_URL = "redis+cluster://127.0.0.1:7100"
DEFAULT_SENTINEL_URL = "redis+sentinel://127.0.0.1:7120,127.0.0.1:7121,127.0.0.1:7122/tta-coord"


def _url(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


async def _answers(url: str) -> bool:
    client = CoordinationSettings(
        redis_url=url, connect_timeout_s=1, socket_timeout_s=2
    ).redis_client()
    try:
        await client.ping()  # pyright: ignore[reportUnknownMemberType]
        return True
    except Exception:
        return False
    finally:
        await client.aclose()


_started: dict[str, bool] = {}


async def _ensure(url: str) -> None:
    """Start the local setup once per session when ``url`` does not answer."""
    if await _answers(url):
        return
    if url not in _started:
        proc = await asyncio.create_subprocess_exec(
            "bash", str(SCRIPT), "up", stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        _started[url] = proc.returncode == 0
        if proc.returncode != 0:
            _started[url] = False
            _report(f"scripts/redis-cluster up failed: {out.decode(errors='replace')[-2000:]}")
    if not await _answers(url):
        _report(f"{url} does not answer after scripts/redis-cluster up")


def _report(reason: str) -> None:
    skip_or_fail(reason)


@pytest.fixture
async def cluster_url() -> str:
    """The local Cluster's URL (started when it does not answer)."""
    url = _url("TTA_COORD_TEST_CLUSTER_URL", DEFAULT_CLUSTER_URL)
    await _ensure(url)
    return url


@pytest.fixture
async def sentinel_url() -> str:
    """The local Sentinel service's URL (started when it does not answer)."""
    url = _url("TTA_COORD_TEST_SENTINEL_URL", DEFAULT_SENTINEL_URL)
    await _ensure(url)
    return url


@pytest.fixture
def cluster_prefix() -> str:
    """A key prefix of this test alone."""
    return unique_prefix("cl")


async def _client(url: str, prefix: str) -> AsyncIterator[RedisClient]:
    client = CoordinationSettings(redis_url=url).redis_client()
    try:
        yield client
    finally:
        try:
            await delete_prefix(client, prefix)  # a SCAN of every primary
        finally:
            await client.aclose()


@pytest.fixture
async def cluster_client(cluster_url: str, cluster_prefix: str) -> AsyncIterator[RedisClient]:
    """A ``RedisCluster`` client from the settings; the test's keys deleted after."""
    async for client in _client(cluster_url, cluster_prefix):
        yield client


@pytest.fixture
async def sentinel_client(sentinel_url: str, cluster_prefix: str) -> AsyncIterator[RedisClient]:
    """A client of the Sentinel service's primary; the test's keys deleted after."""
    async for client in _client(sentinel_url, cluster_prefix):
        yield client


# --- a private Cluster, for tests that kill nodes or move slots ----------------------------

PRIVATE_BASE = 7300
"""Ports 7300-7305: never the shared setup's (7100-7122), which other tests use meanwhile."""
PRIVATE_URL = f"redis+cluster://127.0.0.1:{PRIVATE_BASE}"
PRIVATE_DIR = ROOT / f".redis-cluster-{PRIVATE_BASE}"


def private_cluster_script(*args: str) -> subprocess.CompletedProcess[str]:
    """``scripts/redis-cluster <args>`` on the private Cluster's ports."""
    env = {**os.environ, "TTA_COORD_CLUSTER_BASE_PORT": str(PRIVATE_BASE)}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def private_cluster() -> Iterator[str]:
    """A fresh 3+3 Cluster of this test alone (stopped and deleted after it)."""
    private_cluster_script("down")  # what a crashed earlier run may have left
    up = private_cluster_script("up", "cluster")
    if up.returncode != 0:
        _report(f"the private cluster did not start: {up.stderr[-1500:]}")
    try:
        yield PRIVATE_URL
    finally:
        private_cluster_script("down")
