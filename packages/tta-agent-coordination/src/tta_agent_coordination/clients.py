"""The Redis clients the library accepts, named once: :data:`RedisClient`.

Every public constructor that takes a Redis client (``RedisMessageCoordinator``,
``RedisAgentRegistry``, ``RedisBreakerStore``, ``CoordinationSettings.build_*``, ...)
accepts a plain ``redis.asyncio.Redis`` (standalone, or Sentinel-managed from
``Sentinel.master_for``, which is a ``Redis`` too) and a ``redis.asyncio.RedisCluster``.
See ``docs/scaling.md``.
"""

from __future__ import annotations

from typing import TypeAlias, TypeGuard

import redis.asyncio as aioredis

__all__ = ["RedisClient", "is_cluster"]

RedisClient: TypeAlias = "aioredis.Redis | aioredis.RedisCluster"
"""A client of one Redis server (standalone or Sentinel-managed) or of a Redis Cluster."""


def is_cluster(client: object) -> TypeGuard[aioredis.RedisCluster]:
    """Whether ``client`` is a Redis Cluster client (commands routed by key slot)."""
    return isinstance(client, aioredis.RedisCluster)
