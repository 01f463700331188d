"""Redis clients for tests: an embedded FakeRedis, or the real server, isolated by prefix."""

from __future__ import annotations

import os
import uuid
from typing import Any

import redis.asyncio as aioredis

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import CoordinationError
from tta_agent_coordination.redis.pool import WaitingConnectionPool
from tta_agent_coordination.redis.topology import scan_pages

__all__ = [
    "DEFAULT_TEST_REDIS_URL",
    "RealRedisUnavailableError",
    "delete_prefix",
    "fake_redis",
    "real_redis",
    "real_redis_required",
    "unique_prefix",
]

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
"""The real Redis used by tests unless ``TTA_COORD_TEST_REDIS_URL`` names another."""


class RealRedisUnavailableError(CoordinationError):
    """The real Redis server for tests could not be reached."""


def fake_redis(**kwargs: Any) -> aioredis.Redis:
    """A fresh in-process FakeRedis (its own server, Lua enabled) with redis-py's async API.

    Raises:
        ModuleNotFoundError: fakeredis is not installed (install the ``testing`` extra).
    """
    import fakeredis

    # A real client's pool is unbounded; fakeredis caps it, which breaks concurrency tests.
    kwargs.setdefault("max_connections", 10_000)
    return fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), **kwargs)


async def real_redis(url: str | None = None, **kwargs: Any) -> aioredis.Redis:
    """A client of the real Redis for tests, checked with PING.

    Like the clients of ``CoordinationSettings.redis_client()``, its pool
    (:class:`~tta_agent_coordination.redis.pool.WaitingConnectionPool`) makes a command
    wait for a free connection when all are busy: up to 1,000 connections, a wait of up
    to ``timeout`` (10 s) s. ``kwargs`` are pool and connection options, as
    ``Redis.from_url`` takes them, plus ``single_connection_client``.

    Raises:
        RealRedisUnavailableError: the server does not answer.
    """
    url = url or os.environ.get("TTA_COORD_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    # redis-py's async pool allows 100 connections by default; concurrency tests need more.
    kwargs.setdefault("max_connections", 1_000)
    kwargs.setdefault("timeout", 10.0)
    kwargs.setdefault("socket_connect_timeout", 2)
    single = bool(kwargs.pop("single_connection_client", False))
    pool = WaitingConnectionPool.from_url(url, **kwargs)
    client = aioredis.Redis(connection_pool=pool, single_connection_client=single)
    client.auto_close_connection_pool = True  # closing the client closes its pool
    try:
        await client.ping()  # pyright: ignore[reportUnknownMemberType]
    except (OSError, aioredis.RedisError) as exc:
        await client.aclose()
        raise RealRedisUnavailableError(f"real Redis at {url} is not answering: {exc}") from exc
    return client


def real_redis_required() -> bool:
    """True when a missing real Redis must fail the run instead of skipping.

    Only ``TTA_COORD_REQUIRE_REAL_REDIS=1`` says so, never the generic ``CI`` variable:
    a host application's CI (GitHub Actions sets ``CI=true``) must not start failing
    because it runs tests that never asked for a Redis server.
    """
    flag = os.environ.get("TTA_COORD_REQUIRE_REAL_REDIS", "")
    return flag.strip().lower() in {"1", "true", "yes"}


def unique_prefix(base: str = "t") -> str:
    """A key prefix no other test uses."""
    return f"{base}{uuid.uuid4().hex[:12]}"


async def delete_prefix(client: RedisClient, prefix: str) -> int:
    """Delete every key under ``prefix`` (``prefix:*``); the number deleted.

    On a Redis Cluster every primary is scanned, and each DEL is split by slot.
    """
    deleted = 0
    async for page in scan_pages(client, match=f"{prefix}:*", count=500):
        if page:
            deleted += int(await client.delete(*page))
    return deleted
