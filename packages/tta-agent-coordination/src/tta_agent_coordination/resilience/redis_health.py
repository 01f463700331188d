"""The health check of the breaker around Redis: a PING on a connection of its own.

The check must not wait behind the client's pool: when Redis freezes, every pooled
connection may be stuck in a command until the socket timeout, and a busy process may have
none free. So it opens a connection of its own with the pool's settings (address, TLS,
credentials, database), sends PING and closes it; the breaker bounds it with
``health_check_timeout_s``. It runs only while something is wrong (before a half-open
probe, after a failed call), so its cost is one short connection now and then.
"""

from __future__ import annotations

import weakref
from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.resilience.health_check import HealthCheckFn

__all__ = ["redis_health_check"]


def redis_health_check(client: RedisClient) -> HealthCheckFn:
    """A health check for the Redis behind ``client``: PING on a connection of its own.

    It raises what redis-py raises when Redis does not answer (a ``ConnectionError``, a
    ``TimeoutError``, ``BusyLoadingError`` while Redis loads its data), so the Redis
    breaker's config classifies it. It holds no reference to ``client`` (only to its
    pool), so it never keeps the client alive. A client without a connection pool
    (a cluster client) is PINGed through its own ``ping()``, while it lives.
    """
    pool: Any = getattr(client, "connection_pool", None)
    if pool is None or not hasattr(pool, "make_connection"):
        ref = weakref.ref(client)

        async def ping_client() -> object:
            target = ref()
            if target is None:
                raise ConnectionError("the Redis client was garbage-collected")
            return await target.ping()  # pyright: ignore[reportUnknownMemberType]

        return ping_client

    async def ping() -> object:
        connection: Any = pool.make_connection()
        # One attempt: the breaker decides when to check again (redis-py 8 otherwise
        # retries a refused connection ten times, with backoff).
        connection.retry = Retry(NoBackoff(), 0)
        try:
            await connection.connect()
            await connection.send_command("PING")
            return await connection.read_response()
        finally:
            # nowait: never wait on a peer that may be frozen to close the socket
            await connection.disconnect(nowait=True)

    return ping
