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
from collections import deque
from typing import Any

import redis.exceptions as redis_errors
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

__all__ = ["WaitingConnectionPool", "WaitingSentinelConnectionPool"]


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
        # One permit per connection handed out; waiters are served first come, first
        # served (a permit freed while someone waits goes to the first of them).
        self._free_permits = self.max_connections
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._holding: set[AbstractConnection] = set()

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        """A connected connection, after waiting in line up to ``timeout`` for one."""
        if self._free_permits > 0 and not self._waiters:
            self._free_permits -= 1
        else:
            await self._wait_for_permit()
        try:
            connection = await super().get_connection(*args, **kwargs)  # pyright: ignore[reportDeprecated]
        except BaseException:
            self._give_back_permit()
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
                self._give_back_permit()

    async def _wait_for_permit(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._give_back_permit()  # handed one just as the wait ended: pass it on
            else:
                waiter.cancel()
            if isinstance(exc, TimeoutError):
                raise redis_errors.MaxConnectionsError(
                    f"no free Redis connection within {self.timeout}s (all "
                    f"{self.max_connections} of the pool are busy; raise max_connections, "
                    "or find what holds them)"
                ) from None
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _give_back_permit(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free_permits += 1


class WaitingSentinelConnectionPool(WaitingConnectionPool, SentinelConnectionPool):
    """A :class:`WaitingConnectionPool` to the primary of a Sentinel service.

    Connections go to whichever server the Sentinels report as the primary of
    ``service_name`` (redis-py's ``SentinelConnectionPool``: after a failover, new
    connections reach the new primary); commands wait in line for a free one as in
    :class:`WaitingConnectionPool`. Disconnecting the pool (closing its client) also
    closes the connections to the Sentinels, which no client owns otherwise.

    Args:
        service_name: the service the Sentinels monitor.
        sentinel_manager: the ``redis.asyncio.sentinel.Sentinel`` that asks them.
        **kwargs: as for :class:`WaitingConnectionPool` (``max_connections``,
            ``timeout``, connection options).
    """

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name=service_name, sentinel_manager=sentinel_manager, **kwargs)

    async def disconnect(self, inuse_connections: bool = True) -> None:
        """Close the pool's connections, then those to the Sentinels."""
        try:
            await super().disconnect(inuse_connections)
        finally:
            manager: Sentinel = self.sentinel_manager
            for sentinel in manager.sentinels:
                await sentinel.aclose()
