"""What a client is connected to, and the few operations that differ on a Redis Cluster.

Most of the library never needs to know: every script touches the keys of one hash slot,
so a ``RedisCluster`` client routes each call to the right node by itself. Three things
do differ, and live here:

- **SCAN** walks one server's key space. On a Cluster, :func:`scan_pages` walks every
  primary in turn (a replica holds copies only).
- **A connection of one's own** (the ``StreamWaiter``'s blocked ``XREAD`` and its
  ``CLIENT UNBLOCK``): on a Cluster it must be a connection to the node that owns the
  slot of the streams read (:func:`node_connections`).
- **Reporting the topology** (``tta-coord doctor``): :func:`describe_topology` says
  single server, Cluster with N primaries, or Sentinel service with its current primary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import RedisError

from tta_agent_coordination.clients import RedisClient, is_cluster
from tta_agent_coordination.redis.urls import TopologyKind

__all__ = [
    "NodeConnections",
    "Topology",
    "describe_topology",
    "node_connections",
    "scan_pages",
]

ScanRunner = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""Runs one SCAN round trip (e.g. under a guard with retries); awaits it by default."""


async def _direct(fn: Callable[[], Awaitable[Any]]) -> Any:
    return await fn()


async def scan_pages(
    client: RedisClient,
    *,
    match: str,
    count: int,
    type_: str | None = None,
    run: ScanRunner = _direct,
) -> AsyncIterator[list[Any]]:
    """The keys matching ``match``, one SCAN page at a time, on every primary.

    On one server this is a plain SCAN; on a Cluster, a SCAN of each primary in turn
    (every key lives on exactly one primary, so no key is missed or seen twice while the
    slots stay where they are; a key that moves during a resharding may be seen twice or
    not at all, as with any SCAN). ``run`` wraps each round trip (a guard, retries).
    """
    targets: list[ClusterNode | None]
    if is_cluster(client):
        await client.initialize()
        targets = list(client.get_primaries())
    else:
        targets = [None]
    for node in targets:
        cursor = 0
        while True:

            def page(cursor: int = cursor, node: ClusterNode | None = node) -> Awaitable[Any]:
                return _scan_once(client, node, cursor, match, count, type_)

            cursor, keys = await run(page)
            yield list(keys)
            if cursor == 0:
                break


async def _scan_once(
    client: RedisClient,
    node: ClusterNode | None,
    cursor: int,
    match: str,
    count: int,
    type_: str | None,
) -> tuple[int, list[Any]]:
    if node is None:
        plain = cast(aioredis.Redis, client)
        next_cursor, keys = await plain.scan(cursor, match=match, count=count, _type=type_)
        return int(next_cursor), list(keys)
    cluster = cast(aioredis.RedisCluster, client)
    cursors, keys = await cluster.scan(  # pyright: ignore[reportUnknownVariableType]
        cursor, match=match, count=count, _type=type_, target_nodes=node
    )
    return int(cast(dict[str, Any], cursors)[node.name]), list(cast(list[Any], keys))


class NodeConnections:
    """Connections to the one server that holds a hash slot (any server, off a Cluster).

    Built by :func:`node_connections`; ``get_connection`` and ``release`` as a
    connection pool's, ``execute_command`` runs a command on that same server.
    """

    __slots__ = ("_client", "_node")

    def __init__(self, client: RedisClient, node: ClusterNode | None) -> None:
        self._client = client
        self._node = node

    @property
    def name(self) -> str | None:
        """The node's ``host:port`` on a Cluster; None for one server."""
        return None if self._node is None else self._node.name

    async def get_connection(self) -> Any:
        """A connection of one's own (connected by its first command)."""
        if self._node is None:
            plain = cast(aioredis.Redis, self._client)
            return await plain.connection_pool.get_connection()  # pyright: ignore[reportDeprecated]
        return self._node.acquire_connection()

    async def release(self, connection: Any) -> None:
        """Give ``connection`` back."""
        if self._node is None:
            plain = cast(aioredis.Redis, self._client)
            await plain.connection_pool.release(connection)
        else:
            self._node.release(connection)

    async def execute_command(self, *args: Any) -> Any:
        """Run one command on this server (e.g. ``CLIENT UNBLOCK`` of its connection)."""
        if self._node is None:
            plain: Any = self._client
            return await plain.execute_command(*args)
        cluster = cast(aioredis.RedisCluster, self._client)
        return await cluster.execute_command(*args, target_nodes=self._node)


async def node_connections(client: RedisClient, slot: int | None) -> NodeConnections:
    """Connections to the primary of ``slot`` on a Cluster (``slot`` None: any server).

    Looked up now: after a failover or a resharding, ask again.

    Raises:
        redis.exceptions.RedisError: the Cluster's layout cannot be read.
    """
    if not is_cluster(client) or slot is None:
        return NodeConnections(client, None)
    await client.initialize()
    return NodeConnections(client, client.nodes_manager.get_node_from_slot(slot))


@dataclass(frozen=True, slots=True)
class Topology:
    """What a client is connected to."""

    kind: TopologyKind
    """``single``, ``cluster`` or ``sentinel``."""
    primaries: tuple[str, ...]
    """``host:port`` of every primary (one off a Cluster; empty when unknown)."""
    replicas: int = 0
    """Replicas known to the client (a Cluster's; 0 when not known)."""
    service: str | None = None
    """The Sentinel service name."""
    cluster_node: bool = False
    """A single-server client connected to a node of a Redis Cluster (it will get
    ``MOVED`` for most keys: use a ``redis+cluster://`` URL)."""

    def describe(self) -> str:
        """One line for people: ``cluster with 3 primaries (...)`` and the like."""
        where = ", ".join(self.primaries) or "unknown"
        if self.kind == "cluster":
            n = len(self.primaries)
            return (
                f"cluster with {n} primar{'y' if n == 1 else 'ies'} ({where}) "
                f"and {self.replicas} replica{'' if self.replicas == 1 else 's'}"
            )
        if self.kind == "sentinel":
            return f"sentinel service {self.service!r}, current primary {where}"
        suffix = " (a Redis Cluster node: use redis+cluster://)" if self.cluster_node else ""
        return f"single server {where}{suffix}"


async def describe_topology(client: RedisClient) -> Topology:
    """Ask what ``client`` is connected to (one round trip or two).

    Raises:
        redis.exceptions.RedisError: the servers (or the Sentinels) do not answer.
    """
    if isinstance(client, aioredis.RedisCluster):
        await client.initialize()
        primaries = tuple(sorted(node.name for node in client.get_primaries()))
        return Topology("cluster", primaries, replicas=len(client.get_replicas()))
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        manager: Any = pool.sentinel_manager  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        service = str(pool.service_name)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        host, port = cast(tuple[str, int], await manager.discover_master(service))
        return Topology("sentinel", (f"{host}:{port}",), service=service)
    kwargs: dict[str, Any] = pool.connection_kwargs
    where = (
        str(kwargs["path"]) if kwargs.get("path") else f"{kwargs.get('host')}:{kwargs.get('port')}"
    )
    try:
        info = await client.info("cluster")  # pyright: ignore[reportUnknownMemberType]
        cluster_node = bool(int(info.get("cluster_enabled", 0)))
    except (RedisError, ValueError, TypeError):  # e.g. a server or fake without INFO cluster
        cluster_node = False
    return Topology("single", (where,), cluster_node=cluster_node)
