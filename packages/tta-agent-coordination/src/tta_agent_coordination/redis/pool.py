"""A connection pool that queues for a free connection, first come first served.

redis-py's default asyncio pool raises ``MaxConnectionsError`` at once when all of its
``max_connections`` are busy, so a burst of work (1,000 workers starting in one process)
fails instead of queueing. redis-py's ``BlockingConnectionPool`` waits instead, but not in
order (a task that asks just as a connection comes back takes it before tasks that have
waited for seconds, so some wait until they time out), and a wait that times out raises a
plain ``ConnectionError("No connection available.")``, which reads as "Redis is down" to
a circuit breaker and to retries.

:class:`WaitingConnectionPool` makes commands wait in line (FIFO) for one of its
``max_connections``, up to ``timeout`` seconds, and then raises ``MaxConnectionsError`` (a
``ConnectionError`` subclass, so code that catches ``ConnectionError`` still does), which
the Redis breaker ignores
(:data:`~tta_agent_coordination.resilience.REDIS_IGNORED_ERRORS`). It is the pool of
``CoordinationSettings.redis_client()``; see ``docs/operations.md``, "Clients and
connection pools".
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.exceptions as redis_errors
from redis.asyncio.connection import AbstractConnection, ConnectionPool

__all__ = ["WaitingConnectionPool"]


class WaitingConnectionPool(ConnectionPool):
    """At most ``max_connections`` connections; a command waits its turn for one.

    Build it from a URL with ``WaitingConnectionPool.from_url(url, max_connections=...,
    timeout=..., **connection_options)`` and give it to ``redis.asyncio.Redis(
    connection_pool=...)``.

    Args:
        max_connections: the most connections open at once (redis-py's default: 100).
        timeout: how long a command waits for a free connection, in seconds; None waits
            forever.
        **connection_kwargs: the options of each connection (``host``, ``port``,
            ``socket_timeout``, ...), as for ``redis.asyncio.ConnectionPool``.

    Raises (from a command):
        redis.exceptions.MaxConnectionsError: no connection became free within
            ``timeout`` (the command was not sent).
    """

    def __init__(
        self,
        max_connections: int | None = None,
        timeout: float | None = 10.0,
        **connection_kwargs: Any,
    ) -> None:
        super().__init__(max_connections=max_connections, **connection_kwargs)
        self.timeout = timeout
        # A fair semaphore (FIFO once anyone waits): one permit per connection handed out.
        self._permits = asyncio.Semaphore(self.max_connections)
        self._holding: set[AbstractConnection] = set()

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        """A connected connection, after waiting in line up to ``timeout`` for one."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._permits.acquire()
        except TimeoutError:
            raise redis_errors.MaxConnectionsError(
                f"no free Redis connection within {self.timeout}s (all "
                f"{self.max_connections} of the pool are busy; raise max_connections, or "
                "find what holds them)"
            ) from None
        try:
            connection = await super().get_connection(*args, **kwargs)  # pyright: ignore[reportDeprecated]
        except BaseException:
            self._permits.release()
            raise
        self._holding.add(connection)
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        """Return ``connection`` to the pool; the next command in line gets it."""
        try:
            await super().release(connection)
        finally:
            if connection in self._holding:
                self._holding.discard(connection)
                self._permits.release()
