"""Redis URLs: one server, a Redis Cluster or a Sentinel-managed primary, and their clients.

Three forms are accepted (``TTA_COORD_REDIS_URL``, ``--redis-url``):

- ``redis://[user:password@]host:port[/db]``, ``rediss://`` (TLS), ``unix:///path``:
  one server, as redis-py reads them.
- ``redis+cluster://[user:password@]host:port[,host:port...]`` (``rediss+cluster://``
  for TLS): a Redis Cluster, reached through any of the listed nodes (the client learns
  the others from them). A Cluster has database 0 only.
- ``redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db]``: the
  primary of ``service_name`` as the listed Sentinels report it (the client follows a
  failover). The user and password are those of the data servers; the Sentinels' own
  credentials, when they have some, go in ``?sentinel_username=`` and
  ``?sentinel_password=``.

:func:`parse_redis_url` checks a URL and says what is wrong with it;
:func:`build_client` makes the client; :func:`redact_url` hides every password in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import parse_url
from redis.asyncio.sentinel import Sentinel

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.redis.pool import WaitingConnectionPool, WaitingSentinelConnectionPool

__all__ = [
    "CLUSTER_SCHEMES",
    "SENTINEL_SCHEMES",
    "SINGLE_SCHEMES",
    "RedisTarget",
    "TopologyKind",
    "build_client",
    "parse_redis_url",
    "redact_url",
]

TopologyKind = Literal["single", "cluster", "sentinel"]
"""How the data is laid out: one server, a Redis Cluster, or a primary under Sentinel."""

SINGLE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel",)

_SECRET_QUERY_KEYS = frozenset({"password", "sentinel_password"})
"""Query parameters that carry a secret (redis-py accepts ``?password=``)."""

_SENTINEL_QUERY_KEYS = frozenset({"sentinel_username", "sentinel_password"})
_DEFAULT_PORT = {"cluster": 6379, "sentinel": 26379}
_FORMS = (
    "use redis://host:port/db, rediss:// (TLS), unix:///path/to/socket, "
    "redis+cluster://host:port[,host:port] (rediss+cluster:// for TLS) or "
    "redis+sentinel://host:port[,host:port]/service_name[/db]"
)

# Options of a single-server pool that have no meaning for a Cluster client (its nodes
# keep their own connection lists).
_POOL_ONLY_OPTIONS = ("timeout", "single_connection_client")


def redact_url(url: str) -> str:
    """``url`` with its passwords replaced by ``***``, safe to print or log.

    Every place a Redis URL can hold a password is hidden: the user-info part
    (``redis://user:secret@host``, also before a list of hosts) and the ``password`` and
    ``sentinel_password`` query parameters.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if password:
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key.lower() in _SECRET_QUERY_KEYS for key, _ in query):
        hidden = [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    return urlunsplit(parts)


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A checked Redis URL: what kind of deployment, and how to reach it."""

    kind: TopologyKind
    """``single``, ``cluster`` or ``sentinel``."""
    url: str
    """The URL as given (it may hold a password: print :attr:`redacted`)."""
    nodes: tuple[tuple[str, int], ...] = ()
    """The Cluster nodes to start from, or the Sentinels; empty for one server."""
    service: str | None = None
    """The Sentinel service name (``sentinel`` only)."""
    db: int = 0
    """The database number (always 0 on a Cluster)."""
    username: str | None = None
    """The data servers' user (``cluster`` and ``sentinel``; redis-py reads a single URL)."""
    password: str | None = None
    """The data servers' password (``cluster`` and ``sentinel``)."""
    ssl: bool = False
    """TLS to the Cluster nodes (``rediss+cluster://``)."""
    sentinel_username: str | None = None
    """The Sentinels' own user, when they require one."""
    sentinel_password: str | None = None
    """The Sentinels' own password, when they require one."""

    @property
    def redacted(self) -> str:
        """The URL with its passwords hidden."""
        return redact_url(self.url)


def parse_redis_url(url: str) -> RedisTarget:
    """Check ``url`` and say what it points at.

    Raises:
        ConfigurationError: an unknown scheme, a malformed host list or port, no host, a
            database that is not a number (or not 0 on a Cluster), a Sentinel URL without
            its service name, or an unknown query parameter on a Cluster or Sentinel URL.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigurationError(f"malformed Redis URL {shown!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme in SINGLE_SCHEMES:
        return _single(url, shown)
    if scheme not in CLUSTER_SCHEMES + SENTINEL_SCHEMES:
        raise ConfigurationError(f"unsupported Redis URL {shown!r}: {_FORMS}")
    kind: TopologyKind = "cluster" if scheme in CLUSTER_SCHEMES else "sentinel"
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, password = _credentials(userinfo)
    nodes = _nodes(hostlist, _DEFAULT_PORT[kind], shown)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    allowed = _SENTINEL_QUERY_KEYS if kind == "sentinel" else frozenset[str]()
    unknown = sorted(set(query) - allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise ConfigurationError(
            f"Redis URL {shown!r}: unknown option(s) {', '.join(unknown)} (accepted: {accepted})"
        )
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if kind == "cluster":
        if len(segments) > 1 or (segments and segments[0] != "0"):
            raise ConfigurationError(
                f"Redis URL {shown!r}: a Redis Cluster has database 0 only; "
                "drop the path (redis+cluster://host:port,host:port)"
            )
        return RedisTarget(
            "cluster",
            url,
            nodes,
            username=username,
            password=password,
            ssl=scheme == "rediss+cluster",
        )
    if not segments:
        raise ConfigurationError(
            f"Redis URL {shown!r} names no Sentinel service: "
            "use redis+sentinel://host:port[,host:port]/service_name[/db]"
        )
    if len(segments) > 2:
        raise ConfigurationError(
            f"Redis URL {shown!r}: expected /service_name[/db] after the Sentinels, "
            f"got {parts.path!r}"
        )
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise ConfigurationError(
                f"Redis URL {shown!r}: database {segments[1]!r} is not a number"
            )
        db = int(segments[1])
    return RedisTarget(
        "sentinel",
        url,
        nodes,
        service=segments[0],
        db=db,
        username=username,
        password=password,
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
    )


def build_client(target: RedisTarget, options: dict[str, Any]) -> RedisClient:
    """A new asyncio client for ``target``; nothing is connected until the first command.

    ``options`` are connection options as ``Redis.from_url`` takes them
    (``socket_timeout``, ``max_connections``, ``decode_responses``, ``retry``, ...), plus
    ``timeout`` (how long a command waits for a free pooled connection) and
    ``single_connection_client``. One server and a Sentinel-managed primary use a
    :class:`~tta_agent_coordination.redis.pool.WaitingConnectionPool`; a Cluster client
    keeps ``max_connections`` per node and ignores the two pool-only options. The caller
    owns the client and closes it (``await client.aclose()``).

    Raises:
        ConfigurationError: redis-py refused an option of the URL.
    """
    options = dict(options)
    if target.kind == "cluster":
        for name in _POOL_ONLY_OPTIONS:
            options.pop(name, None)
        return aioredis.RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            username=target.username,
            password=target.password,
            ssl=target.ssl,
            **options,
        )
    single = bool(options.pop("single_connection_client", False))
    if target.kind == "sentinel":
        return _sentinel_client(target, options, single=single)
    try:
        pool = WaitingConnectionPool.from_url(target.url, **options)
    except ValueError as exc:
        raise ConfigurationError(f"malformed Redis URL {target.redacted!r}: {exc}") from None
    client = aioredis.Redis(connection_pool=pool, single_connection_client=single)
    client.auto_close_connection_pool = True  # the client owns its pool, as from_url's
    return client


def _sentinel_client(target: RedisTarget, options: dict[str, Any], *, single: bool) -> RedisClient:
    pool_options = {k: options.pop(k) for k in ("max_connections", "timeout") if k in options}
    # The Sentinels are asked with the same timeouts as the data servers, but with their
    # own credentials (often none).
    sentinel_kwargs: dict[str, Any] = {
        k: options[k] for k in ("socket_timeout", "socket_connect_timeout", "retry") if k in options
    }
    if target.sentinel_username:
        sentinel_kwargs["username"] = target.sentinel_username
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    sentinel = Sentinel(
        list(target.nodes),
        sentinel_kwargs=sentinel_kwargs,
        username=target.username,
        password=target.password,
        db=target.db,
        **options,
    )
    pool = WaitingSentinelConnectionPool(
        target.service or "", sentinel, **sentinel.connection_kwargs, **pool_options
    )
    client = aioredis.Redis(connection_pool=pool, single_connection_client=single)
    client.auto_close_connection_pool = True  # closing the client closes its pool
    return client


def _single(url: str, shown: str) -> RedisTarget:
    parts = urlsplit(url)
    try:
        parsed = parse_url(url)  # the parser redis-py itself uses; rejects e.g. a bad port
    except ValueError as exc:
        raise ConfigurationError(f"malformed Redis URL {shown!r}: {exc}") from None
    if parts.scheme != "unix":
        if not parts.hostname:
            raise ConfigurationError(f"Redis URL {shown!r} names no host")
        db = parts.path.lstrip("/")
        # redis-py silently ignores a non-numeric path, which would point at db 0 unnoticed.
        if db and not db.isdigit():
            raise ConfigurationError(f"Redis URL {shown!r}: database {db!r} is not a number")
    return RedisTarget("single", url, db=int(parsed.get("db", 0) or 0))


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, sep, password = userinfo.partition(":")
    return unquote(user) or None, unquote(password) if sep and password else None


def _nodes(hostlist: str, default_port: int, shown: str) -> tuple[tuple[str, int], ...]:
    nodes: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        item = item.strip()
        if not item:
            raise ConfigurationError(f"Redis URL {shown!r} names no host (or an empty one)")
        if item.startswith("["):  # [ipv6]:port
            host, _, rest = item[1:].partition("]")
            port_text = rest.removeprefix(":")
        else:
            host, _, port_text = item.partition(":")
        if not host:
            raise ConfigurationError(f"Redis URL {shown!r}: {item!r} names no host")
        if not port_text:
            nodes.append((host, default_port))
            continue
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigurationError(
                f"Redis URL {shown!r}: port {port_text!r} of {host!r} is invalid"
            )
        nodes.append((host, int(port_text)))
    return tuple(nodes)
