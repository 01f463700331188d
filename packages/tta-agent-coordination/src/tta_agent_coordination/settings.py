"""``CoordinationSettings``: one place for the settings the library and ``tta-coord`` share.

Every field can come from the environment (prefix ``TTA_COORD_``, e.g.
``TTA_COORD_REDIS_URL=redis://127.0.0.1:6379/0``), from a ``.env`` file in the current
directory, or from keyword arguments (which win)::

    settings = CoordinationSettings()  # from the environment
    client = settings.redis_client()
    coord = settings.build_coordinator(client)
    registry = settings.build_registry(client, coordinator=coord)
    worker = AgentWorker(coord, registry, agent_id, **settings.worker_options())

With ``TTA_COORD_POSTGRES_DSN`` set, ``build_coordinator`` attaches the message store
(``build_store``, through the ``postgres`` store plugin) and ``build_registry`` records
agents to the same store; see ``docs/durability.md``.

An invalid value raises :class:`~tta_agent_coordination.errors.ConfigurationError`
naming every problem.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Self

from pydantic import ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.urls import (
    RedisTarget,
    build_client,
    parse_redis_url,
    redact_url,
)

if TYPE_CHECKING:
    from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
    from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
    from tta_agent_coordination.store import MessageStore

__all__ = [
    "DURABILITY_MODES",
    "ENV_PREFIX",
    "LOG_LEVELS",
    "STORE_PLUGIN",
    "CoordinationSettings",
    "redact_url",
]

ENV_PREFIX = "TTA_COORD_"
"""The prefix of every environment variable read by :class:`CoordinationSettings`."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""The accepted values of ``log_level`` (case-insensitive)."""

DURABILITY_MODES = ("async", "sync")
"""The accepted values of ``store_durability`` (see ``docs/durability.md``)."""

STORE_PLUGIN = "postgres"
"""The store plugin (entry point of ``tta_agent_coordination.stores``) ``build_store`` loads."""


def _named(field: str) -> str:
    """``field (TTA_COORD_FIELD)``: a setting as messages name it, with its variable."""
    return f"{field} ({ENV_PREFIX}{field.upper()})"


def _describe(exc: ValidationError) -> str:
    parts: list[str] = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{_named(loc)}: {msg}" if loc else msg)
    return "invalid settings: " + "; ".join(parts)


class CoordinationSettings(BaseSettings):
    """Settings of the library and of ``tta-coord``, from the environment (``TTA_COORD_*``).

    Keyword arguments override the environment, which overrides a ``.env`` file.

    Raises:
        ConfigurationError: a value breaks a rule (every problem is named, with the
            environment variable that sets it).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_parse_none_str="none",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    redis_url: str | None = None
    """The Redis server (``redis://host:6379/0``, ``rediss://``, ``unix://``), a Redis
    Cluster (``redis+cluster://host:port,host:port``) or a primary under Sentinel
    (``redis+sentinel://host:port,host:port/service_name[/db]``); None = not given.
    See ``docs/scaling.md``."""

    key_prefix: str = "ao"
    """Prefix of every key (1-64 of letters, digits, ``_ . - :``); ``ao`` as in TTA."""

    socket_timeout_s: float | None = 10.0
    """Bound on one Redis command's reply, in seconds; None waits forever.

    Keep it above the longest blocking receive slice (5 s), or idle blocking receives fail.
    It is also how long a call may hang on a frozen Redis before the circuit breaker
    learns of it (see docs/resilience.md).
    """

    connect_timeout_s: float = 5.0
    """Bound on opening one connection, in seconds."""

    max_connections: int = 100
    """Most connections the client opens; when all are busy, a command waits for one."""

    pool_timeout_s: float | None = 10.0
    """How long a command waits for a free connection when all ``max_connections`` are
    busy; then it fails with ``MaxConnectionsError`` (never counted by the circuit
    breaker). None waits forever."""

    health_check_interval_s: float = 30.0
    """A connection idle this long is PINGed before reuse, so a dead one is noticed; 0 = off."""

    visibility_timeout_s: float = 30.0
    """How long a worker's received message stays leased before it is redelivered."""

    concurrency: int | None = None
    """How many messages one worker handles at the same time; None: the worker's default
    (8, with reads that adapt to the backlog: docs/worker.md)."""

    grace_period_s: float = 10.0
    """On shutdown, how long a worker waits for handlers in flight before releasing them."""

    heartbeat_ttl_s: float = 30.0
    """How long a registration stays alive without a heartbeat (heartbeats every third)."""

    request_timeout_s: float = 30.0
    """Default time a request waits for its reply."""

    log_level: str = "INFO"
    """Level of the logs ``tta-coord`` writes to stderr (DEBUG, INFO, WARNING, ERROR, CRITICAL)."""

    json_logs: bool = False
    """Write logs as JSON lines instead of the human console format."""

    postgres_dsn: str | None = None
    """The Postgres message store (``postgresql://user@host/db``); None = no store.

    Set, every coordinator built from these settings records to it, so a restore after
    a Redis loss knows what was settled (``docs/durability.md``).
    """

    postgres_schema: str = "tta_coord"
    """The store's schema (the same ``TTA_COORD_POSTGRES_SCHEMA`` ``tta-coord store`` reads)."""

    store_durability: str = "async"
    """``async`` (write-behind, the default) or ``sync`` (a send is recorded before it returns)."""

    wait_replicas: int = 0
    """Replicas that must confirm each send (``WAIT``) before it counts as enqueued; 0 =
    none. Unconfirmed sends are reported ``UNKNOWN`` (``docs/scaling.md``, "Durability
    across a failover")."""

    wait_timeout_s: float = 0.5
    """Longest wait for those replicas, in seconds; then the send is ``UNKNOWN``."""

    instance: str | None = None
    """The agent instance a worker factory should run as (``tta-coord worker --instance``)."""

    takeover: bool = False
    """Register a worker even when a live owner holds its agent id (``--takeover``).

    Off by default: replacing a live process is a surprise. Turn it on where a supervisor
    restarts a crashed worker under the same id at once (``docs/operations.md``).
    """

    if not TYPE_CHECKING:  # keep pydantic's typed signature for type checkers

        def __init__(self, **values: Any) -> None:
            try:
                super().__init__(**values)
            except ValidationError as exc:
                raise ConfigurationError(_describe(exc)) from None

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        parse_redis_url(value)  # raises ConfigurationError (a ValueError) saying what is wrong
        return value

    @field_validator("key_prefix")
    @classmethod
    def _key_prefix(cls, value: str) -> str:
        KeySpace(value)  # the one rule for prefixes; raises ConfigurationError (a ValueError)
        return value

    @field_validator("postgres_dsn", "instance")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("store_durability")
    @classmethod
    def _durability(cls, value: str) -> str:
        mode = value.strip().lower()
        if mode not in DURABILITY_MODES:
            raise ValueError(f"durability must be async or sync, got {value!r}")
        return mode

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level == "WARN":
            level = "WARNING"
        if level not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
        return level

    @model_validator(mode="after")
    def _check(self) -> Self:
        # Checked here rather than per field so that every problem is reported at once;
        # each names its field and environment variable, as field errors do (_describe).
        problems: list[str] = []
        positive = {
            "connect_timeout_s": self.connect_timeout_s,
            "visibility_timeout_s": self.visibility_timeout_s,
            "heartbeat_ttl_s": self.heartbeat_ttl_s,
            "request_timeout_s": self.request_timeout_s,
            "wait_timeout_s": self.wait_timeout_s,
        }
        if self.socket_timeout_s is not None:
            positive["socket_timeout_s"] = self.socket_timeout_s
        if self.pool_timeout_s is not None:
            positive["pool_timeout_s"] = self.pool_timeout_s
        problems.extend(
            f"{_named(name)}: must be > 0, got {v}" for name, v in positive.items() if v <= 0
        )
        at_least = {
            "health_check_interval_s": (self.health_check_interval_s, 0),
            "grace_period_s": (self.grace_period_s, 0),
            "max_connections": (self.max_connections, 1),
            "wait_replicas": (self.wait_replicas, 0),
        }
        if self.concurrency is not None:
            at_least["concurrency"] = (self.concurrency, 1)
        problems.extend(
            f"{_named(name)}: must be >= {low}, got {v}"
            for name, (v, low) in at_least.items()
            if v < low
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def log_level_number(self) -> int:
        """``log_level`` as a :mod:`logging` level number."""
        return logging.getLevelNamesMapping()[self.log_level]

    @property
    def redacted_url(self) -> str | None:
        """``redis_url`` with its password hidden, for messages and logs."""
        return None if self.redis_url is None else redact_url(self.redis_url)

    def require_redis_url(self) -> str:
        """``redis_url``, or a ``ConfigurationError`` that says how to give one."""
        if self.redis_url is None:
            raise ConfigurationError(
                f"no Redis server given: set {ENV_PREFIX}REDIS_URL or pass --redis-url "
                "(e.g. redis://127.0.0.1:6379/0)"
            )
        return self.redis_url

    @property
    def redis_target(self) -> RedisTarget:
        """``redis_url`` parsed: one server, a Cluster or a Sentinel service, and its nodes.

        Raises:
            ConfigurationError: no URL is set.
        """
        return parse_redis_url(self.require_redis_url())

    def redis_client(self, **overrides: Any) -> RedisClient:
        """A new asyncio client for ``redis_url`` with production settings.

        A ``redis+cluster://`` URL gives a ``redis.asyncio.RedisCluster`` (at most
        ``max_connections`` per node; ``pool_timeout_s`` does not apply), a
        ``redis+sentinel://`` URL a ``redis.asyncio.Redis`` on the service's current
        primary, any other a ``redis.asyncio.Redis`` on that server. The pool of the last
        two (a :class:`~tta_agent_coordination.redis.pool.WaitingConnectionPool`)
        opens at most ``max_connections``; when all are busy, a command waits up to
        ``pool_timeout_s`` for one instead of failing at once. The caller owns the client
        and closes it (``await client.aclose()``, which closes the pool too). Nothing is
        connected until the first command. ``overrides`` are options of the pool and
        its connections, as ``Redis.from_url`` takes them (``timeout`` is the pool's
        wait), plus ``single_connection_client``.

        Raises:
            ConfigurationError: no URL is set, or the URL is malformed.
        """
        url = self.require_redis_url()
        options: dict[str, Any] = {
            "socket_timeout": self.socket_timeout_s,
            "socket_connect_timeout": self.connect_timeout_s,
            "max_connections": self.max_connections,
            "timeout": self.pool_timeout_s,
            "health_check_interval": self.health_check_interval_s,
            # redis-py 8 retries a failed connection 10 times with backoff by default. That
            # hides an outage from the library's circuit breaker for seconds and multiplies
            # the load on a struggling server; RedisGuard already retries what is safe to
            # repeat, so the client fails at once and lets the guard decide.
            "retry": Retry(NoBackoff(), 0),
        }
        options.update(overrides)
        return build_client(parse_redis_url(url), options)

    def build_coordinator(self, client: RedisClient, **overrides: Any) -> RedisMessageCoordinator:
        """A ``RedisMessageCoordinator`` on ``client`` under ``key_prefix``.

        ``overrides`` go to the coordinator (``queue_size=``, ``store=``, ...). Without
        ``store=`` and with ``postgres_dsn`` set, the coordinator records to the store of
        :meth:`build_store`, with ``store_durability``, and closes it in ``aclose()``;
        ``store=None`` builds one without a store.

        Raises:
            PluginError: ``postgres_dsn`` is set but the store cannot be built.
        """
        from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

        options: dict[str, Any] = {
            "key_prefix": self.key_prefix,
            "wait_replicas": self.wait_replicas,
            "wait_timeout_s": self.wait_timeout_s,
            **overrides,
        }
        if "store" not in overrides:
            store = self.build_store()
            if store is not None:
                # Built here, so owned here: the coordinator's aclose() closes it.
                options.update(store=store, close_store=True)
        if options.get("store") is not None:
            options.setdefault("durability", self.store_durability)
        return RedisMessageCoordinator(client, **options)

    def build_store(self, **overrides: Any) -> MessageStore | None:
        """The message store at ``postgres_dsn`` (not yet connected), or None without one.

        Loaded through the store plugin ``postgres`` (``plugins.load_store``), so this
        package never imports the Postgres adapter. ``overrides`` go to the store
        (``min_size=``, ``max_size=``, ...). The caller owns the store (``await
        store.aclose()``); :meth:`build_coordinator` builds and owns one by itself.

        Raises:
            PluginError: the adapter (``tta-agent-coordination[postgres]``) is not
                installed, or refused the settings.
        """
        if self.postgres_dsn is None:
            return None
        from tta_agent_coordination.plugins import PluginError, load_store

        try:
            return load_store(
                STORE_PLUGIN, dsn=self.postgres_dsn, schema=self.postgres_schema, **overrides
            )
        except PluginError as exc:
            raise PluginError(
                f"{ENV_PREFIX}POSTGRES_DSN is set but the message store cannot be built: {exc} "
                "(install tta-agent-coordination[postgres])"
            ) from exc

    def build_registry(
        self,
        client: RedisClient,
        *,
        coordinator: RedisMessageCoordinator | None = None,
        **overrides: Any,
    ) -> RedisAgentRegistry:
        """A ``RedisAgentRegistry`` on ``client`` with ``heartbeat_ttl_s``.

        Pass the ``coordinator`` so that a replaced (crashed) agent's leased messages
        return to its queue at once. ``overrides`` go to the registry: its settings
        (``RegistryConfig`` fields, or a whole ``config=``, which replaces
        ``heartbeat_ttl_s`` from here) and its collaborators (``store=``, ``guard=``, ...).
        Without ``store=``, the registry records agents to the coordinator's store.

        Raises:
            ConfigurationError: a registry setting is out of range.
        """
        from tta_agent_coordination.redis.agent_registry import (
            RedisAgentRegistry,
            RegistryConfig,
        )

        given = {k: overrides.pop(k) for k in list(overrides) if k in RegistryConfig.model_fields}
        base: RegistryConfig | None = overrides.pop("config", None)
        if base is None:
            config = RegistryConfig.build(**{"heartbeat_ttl_s": self.heartbeat_ttl_s, **given})
        else:
            config = base.updated(**given) if given else base
        options: dict[str, Any] = {
            "key_prefix": self.key_prefix,
            "coordinator": coordinator,
            **overrides,
        }
        if "store" not in overrides and coordinator is not None and coordinator.store is not None:
            options["store"] = coordinator.store  # agents recorded where their messages are
        if options.get("store") is not None:
            options.setdefault("durability", self.store_durability)
        return RedisAgentRegistry(client, config=config, **options)

    def worker_options(self) -> dict[str, Any]:
        """The ``AgentWorker`` keyword arguments these settings decide.

        ``AgentWorker(coord, registry, agent_id, **settings.worker_options())``.
        """
        options: dict[str, Any] = {
            "visibility_timeout": self.visibility_timeout_s,
            "grace_period": self.grace_period_s,
            "takeover": self.takeover,
        }
        if self.concurrency is not None:  # unset keeps the worker's adaptive reads
            options["concurrency"] = self.concurrency
        return options
