"""``PostgresMessageStore``: the durable record of every message and agent, on Postgres.

Every write is one transaction (all or nothing) and idempotent; see the core's
``tta_agent_coordination.store`` for how events are ordered by version.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncGenerator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, LiteralString, Self

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tta_agent_coordination.models import AgentId, AgentMessage, MessagePriority
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.store import (
    AgentEvent,
    AgentEventKind,
    LifecycleKind,
    MessageEvent,
    MessageStatus,
    MessageStore,
    PendingMessage,
    RestoreTarget,
    StoreError,
    StorePayloadError,
    StorePermissionError,
    StoreUnavailableError,
)
from tta_agent_coordination_postgres.errors import StoreConfigurationError, StoreNotMigratedError
from tta_agent_coordination_postgres.models import (
    StoredAgent,
    StoredEvent,
    StoredMessage,
    StoreStats,
)

__all__ = ["DEFAULT_SCHEMA", "PostgresMessageStore", "migrations"]

DEFAULT_SCHEMA = "tta_coord"
"""The schema the store works in unless told otherwise."""

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_UNSETTLED = ("queued", "leased", "retrying")

# Envelopes leave out fields at their defaults (priority NORMAL = 5), so the columns
# derived from them fall back to those defaults. An id without an instance is type-wide
# and is written as its type alone, as str(AgentId) does ("type", else "type:instance").
_UPSERT_MESSAGES = (
    sql.SQL("""
INSERT INTO messages AS m (
    message_id, recipient, sender, correlation_id, message_type, priority, envelope,
    status, attempts, last_error, failure, incarnation, rank, available_at_ms, settled_at)
SELECT u.mid, u.rcp,
    (x.j -> 'sender' ->> 'type') || COALESCE(':' || (x.j -> 'sender' ->> 'instance'), ''),
    x.j ->> 'correlation_id', x.j ->> 'message_type',
    COALESCE((x.j ->> 'priority')::smallint, 5), x.j,
    u.status, u.attempts, u.err, u.failure, u.inc, u.rank, u.avail,
    CASE WHEN u.status IN ('acked', 'dead', 'cancelled') THEN now() END
FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::int[], %b::text[],
            %b::text[], %b::bigint[], %b::smallint[], %b::bigint[])
    AS u(mid, rcp, env, status, attempts, err, failure, inc, rank, avail)
CROSS JOIN LATERAL (SELECT u.env::jsonb AS j) AS x
ON CONFLICT (message_id, recipient) DO UPDATE SET
    envelope = COALESCE(m.envelope, excluded.envelope),
    sender = COALESCE(m.sender, excluded.sender),
    correlation_id = COALESCE(m.correlation_id, excluded.correlation_id),
    message_type = COALESCE(m.message_type, excluded.message_type),
    priority = COALESCE(m.priority, excluded.priority),
    status = CASE WHEN {newer} THEN excluded.status ELSE m.status END,
    attempts = CASE WHEN {newer} THEN excluded.attempts ELSE m.attempts END,
    last_error = CASE WHEN {newer} THEN COALESCE(excluded.last_error, m.last_error)
        ELSE m.last_error END,
    failure = CASE WHEN {newer} THEN COALESCE(excluded.failure, m.failure) ELSE m.failure END,
    incarnation = CASE WHEN {newer} THEN excluded.incarnation ELSE m.incarnation END,
    rank = CASE WHEN {newer} THEN excluded.rank ELSE m.rank END,
    available_at_ms = CASE WHEN {newer} THEN excluded.available_at_ms
        ELSE m.available_at_ms END,
    settled_at = CASE WHEN {newer} THEN excluded.settled_at ELSE m.settled_at END,
    updated_at = now()
WHERE {newer} OR (m.envelope IS NULL AND excluded.envelope IS NOT NULL)
""")
    .format(
        newer=sql.SQL(
            "((excluded.incarnation, excluded.attempts, excluded.rank)"
            " > (m.incarnation, m.attempts, m.rank))"
        )
    )
    .as_string(None)
)

_INSERT_EVENTS = """
INSERT INTO message_events (message_id, recipient, kind, status, incarnation, attempts,
    error, failure)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[],
    %b::int[], %b::text[], %b::text[])
ON CONFLICT DO NOTHING
"""

# Composed with psycopg.sql (never f-strings), so no value can end up in the SQL text.
_SELECT_MESSAGES = sql.SQL(
    "SELECT seq, message_id, recipient, sender, correlation_id, envelope::text, status,"
    " attempts, last_error, failure, created_at, updated_at, settled_at FROM messages"
)


def _select_messages(where: LiteralString) -> sql.Composed:
    """``SELECT <the message columns> FROM messages`` followed by a constant clause."""
    return sql.SQL(" ").join([_SELECT_MESSAGES, sql.SQL(where)])


def migrations() -> list[tuple[int, str, str]]:
    """The migrations shipped with the package: ``(version, name, sql)``, in order.

    Versions may have gaps (features add theirs independently); ``migrate`` applies each
    version a schema has not recorded, so a lower version shipped later still runs.
    """
    found: list[tuple[int, str, str]] = []
    # The directory through the package, not ``files("...migrations")``: that imports the
    # subpackage, which rebinds ``tta_agent_coordination_postgres.migrations`` (this
    # function, exported there) to the module for everyone who imports it afterwards.
    folder = resources.files("tta_agent_coordination_postgres").joinpath("migrations")
    for entry in folder.iterdir():
        match = _MIGRATION_RE.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    return sorted(found)


def _check_unique_versions(found: Sequence[tuple[int, str, str]]) -> None:
    ordered = sorted(found, key=lambda m: m[0])
    for (version, first, _), (other, second, _) in itertools.pairwise(ordered):
        if version == other:
            raise StoreConfigurationError(
                f"migrations {version:04d}_{first}.sql and {other:04d}_{second}.sql share a "
                "version; renumber one of them"
            )


class PostgresMessageStore(MessageStore):
    """A :class:`MessageStore` on Postgres (psycopg 3, async, with a connection pool).

    Open it with ``async with PostgresMessageStore(dsn) as store`` (or :meth:`open` and
    :meth:`aclose`), create its tables with :meth:`migrate`, and pass it to
    ``RedisMessageCoordinator(..., store=store)`` and ``RedisAgentRegistry(...,
    store=store)``.

    Args:
        dsn: a libpq connection string or URL (``postgresql://user@host:5432/db``).
        schema: the schema holding the tables, so that several deployments (or test
            runs) share one database. Lower-case letters, digits and ``_``.
        min_size: connections the pool keeps open.
        max_size: most connections the pool opens.
        connect_timeout_s: how long opening the store waits for Postgres.

    Raises:
        StoreConfigurationError: the schema name is invalid.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        min_size: int = 1,
        max_size: int = 4,
        connect_timeout_s: float = 5.0,
    ) -> None:
        if not _SCHEMA_RE.fullmatch(schema):
            raise StoreConfigurationError(
                f"invalid schema name {schema!r}: use 1-63 lower-case letters, digits and '_', "
                "not starting with a digit"
            )
        if not 1 <= min_size <= max_size:
            raise StoreConfigurationError(
                f"pool sizes must satisfy 1 <= min_size <= max_size, got {min_size}, {max_size}"
            )
        self._dsn = dsn
        self._schema = schema
        self._min = min_size
        self._max = max_size
        self._timeout = connect_timeout_s
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._log = get_logger(__name__, schema=schema)

    @property
    def schema(self) -> str:
        """The schema the store works in."""
        return self._schema

    # --- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (checking the DSN and the server first, for a clear error).

        Raises:
            StoreConfigurationError: the DSN is not valid.
            StoreUnavailableError: Postgres cannot be reached or refused the login.
        """
        if self._pool is not None:
            return
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._dsn, connect_timeout=max(1, round(self._timeout))
            )
        except psycopg.ProgrammingError as exc:
            raise StoreConfigurationError(f"invalid Postgres DSN: {_first_line(exc)}") from None
        except psycopg.Error as exc:
            raise StoreUnavailableError(
                f"cannot connect to Postgres: {_first_line(exc)}; check the DSN, that the "
                "server runs, and that the user may log in"
            ) from None
        await conn.close()
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            self._dsn,
            min_size=self._min,
            max_size=self._max,
            kwargs={"options": f"-c search_path={self._schema}"},
            open=False,
            timeout=self._timeout,
        )
        try:
            await pool.open(wait=True, timeout=self._timeout)
        except PoolTimeout as exc:  # pragma: no cover - the probe above connected
            await pool.close()
            raise StoreUnavailableError(f"cannot open the Postgres pool: {exc}") from None
        self._pool = pool

    async def aclose(self) -> None:
        """Close the connection pool (idempotent)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @asynccontextmanager
    async def _tx(self, operation: str) -> AsyncGenerator[psycopg.AsyncConnection[Any]]:
        """A connection in a transaction; psycopg errors become store errors."""
        await self.open()
        assert self._pool is not None
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield conn
        except StoreError:
            raise
        except psycopg.errors.InsufficientPrivilege as exc:
            raise StorePermissionError(
                f"{operation}: the database user lacks a privilege: {_first_line(exc)} "
                f"(schema {self._schema!r}); nothing was written"
            ) from None
        except psycopg.errors.UndefinedTable:
            raise StoreNotMigratedError(
                f"{operation}: schema {self._schema!r} has no store tables; run "
                "`await store.migrate()` or `tta-coord store migrate`"
            ) from None
        except psycopg.DataError as exc:
            raise StorePayloadError(
                f"{operation}: Postgres cannot store the data: {_first_line(exc)}; "
                "nothing was written"
            ) from None
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreUnavailableError(
                f"{operation} failed: {_first_line(exc)}; nothing was written"
            ) from None

    def transaction(
        self, operation: str
    ) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        """A pooled connection in a transaction, psycopg errors raised as store errors.

        For the package's other stores on the same pool and schema
        (``PostgresInteractionStore``, ``PostgresPlanRunStore``); ``operation`` names the
        work in error messages.

        Raises:
            StoreNotMigratedError: the schema has no tables.
            StorePermissionError: the user lacks a privilege.
            StorePayloadError: Postgres cannot store the data.
            StoreUnavailableError: Postgres failed.
        """
        return self._tx(operation)

    # --- migrations ---------------------------------------------------------------------

    async def migrate(self) -> list[int]:
        """Create or upgrade the schema; the versions applied by this call.

        All pending migrations run in one transaction under an advisory lock (per schema),
        so concurrent and repeated calls are safe and a failure leaves nothing behind.

        Raises:
            StoreConfigurationError: two migrations share a version (nothing is applied).
            StorePermissionError: the user may not create the schema or its tables.
        """
        shipped = migrations()
        _check_unique_versions(shipped)
        schema = sql.Identifier(self._schema)
        async with self._tx("migrate") as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"tta_coord:migrate:{self._schema}",)
            )
            await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            await conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.schema_migrations (version integer PRIMARY KEY,"
                    " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(schema)
            )
            cur = await conn.execute(
                sql.SQL("SELECT version FROM {}.schema_migrations").format(schema)
            )
            done = {int(row[0]) for row in await cur.fetchall()}
            applied: list[int] = []
            for version, name, script in shipped:
                if version in done:
                    continue
                await conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(schema))
                await conn.execute(script.encode("utf-8"))
                await conn.execute(
                    sql.SQL(
                        "INSERT INTO {}.schema_migrations (version, name) VALUES (%s, %s)"
                    ).format(schema),
                    (version, name),
                )
                applied.append(version)
        if applied:
            self._log.info("store_migrated", applied=applied)
        return applied

    async def drop_schema(self) -> None:
        """Drop the store's schema with everything in it (tests and teardown only)."""
        async with self._tx("drop_schema") as conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self._schema))
            )

    # --- writing ------------------------------------------------------------------------

    def check_envelope(self, message_id: str, envelope: str) -> None:
        """Refuse an envelope Postgres JSON cannot hold (a NUL character, escaped in JSON).

        Raises:
            StorePayloadError: the envelope holds a NUL character.
        """
        if "\\u0000" in envelope:
            raise StorePayloadError(
                f"message {message_id!r} holds a NUL character (\\u0000), which Postgres "
                "cannot store in JSON; remove it or encode the data (e.g. base64)"
            )

    async def record(self, events: Sequence[MessageEvent]) -> None:
        """Write lifecycle events in one transaction; idempotent and order-insensitive.

        Raises:
            StorePayloadError: an envelope cannot be stored (nothing was written).
            StoreUnavailableError: Postgres failed (nothing was written).
            StoreNotMigratedError: the schema has no tables.
        """
        if not events:
            return
        # One row per key and statement: ON CONFLICT DO UPDATE may touch a row only once.
        latest: dict[tuple[str, str], MessageEvent] = {}
        envelopes: dict[tuple[str, str], str] = {}
        for event in events:
            key = (event.message_id, str(event.recipient))
            best = latest.get(key)
            if best is None or event.version > best.version:
                latest[key] = event
            if event.envelope is not None:
                envelopes.setdefault(key, event.envelope)
        rows = list(latest.items())
        message_params = (
            [k[0] for k, _ in rows],
            [k[1] for k, _ in rows],
            [envelopes.get(k) for k, _ in rows],
            [e.status.value for _, e in rows],
            [e.attempts for _, e in rows],
            [e.error for _, e in rows],
            [e.failure.value if e.failure is not None else None for _, e in rows],
            [e.incarnation for _, e in rows],
            [e.kind.rank for _, e in rows],
            [e.available_at_ms for _, e in rows],
        )
        event_params = (
            [e.message_id for e in events],
            [str(e.recipient) for e in events],
            [e.kind.value for e in events],
            [e.status.value for e in events],
            [e.incarnation for e in events],
            [e.attempts for e in events],
            [e.error for e in events],
            [e.failure.value if e.failure is not None else None for e in events],
        )
        async with self._tx("record") as conn:
            await conn.execute(_UPSERT_MESSAGES.encode(), message_params)
            await conn.execute(_INSERT_EVENTS.encode(), event_params)

    async def record_agents(self, events: Sequence[AgentEvent]) -> None:
        """Write registrations and deregistrations, in order, in one transaction."""
        if not events:
            return
        async with self._tx("record_agents") as conn:
            for event in events:
                agent = str(event.agent_id)
                if event.kind is AgentEventKind.REGISTERED:
                    await conn.execute(
                        "INSERT INTO agents AS a (agent_id, agent_type, instance, name,"
                        " capabilities, metadata) VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb)"
                        " ON CONFLICT (agent_id) DO UPDATE SET name = excluded.name,"
                        " capabilities = excluded.capabilities, metadata = excluded.metadata,"
                        " last_seen = now(), deregistered_at = NULL",
                        (
                            agent,
                            event.agent_id.type,
                            event.agent_id.instance,
                            event.name,
                            json.dumps(event.capabilities),
                            json.dumps(event.metadata, default=str),
                        ),
                    )
                else:
                    await conn.execute(
                        "UPDATE agents SET last_seen = now(), deregistered_at = now()"
                        " WHERE agent_id = %s",
                        (agent,),
                    )

    async def record_seen(self, agent_ids: Sequence[AgentId]) -> None:
        """Move ``last_seen`` of the agents to now; a deregistered agent is left alone.

        Raises:
            StoreUnavailableError: Postgres failed (nothing was written).
        """
        if not agent_ids:
            return
        async with self._tx("record_seen") as conn:
            await conn.execute(
                "UPDATE agents SET last_seen = now()"
                " WHERE agent_id = ANY(%s) AND deregistered_at IS NULL",
                ([str(a) for a in agent_ids],),
            )

    # --- recovery -----------------------------------------------------------------------

    async def restore(self, coordinator: RestoreTarget, *, batch_size: int = 1000) -> int:
        """Enqueue again every unsettled message (queued, leased, retrying); how many.

        Each keeps its attempts, last error, priority and expiry, and a scheduled send
        not yet delivered its due time (it goes back to the delayed set until then). The
        coordinator skips a message whose id is still live in Redis (or settled within
        its dedupe window), so restoring while Redis holds some of them, or twice,
        enqueues each message once.
        Every message enqueued is recorded as ``restored``.
        """
        if batch_size <= 0:
            raise StoreConfigurationError(f"batch_size must be > 0, got {batch_size}")
        last = 0
        restored = 0
        skipped_without_envelope = 0
        while True:
            async with self._tx("restore") as conn:
                cur = await conn.execute(
                    "SELECT seq, message_id, recipient, envelope::text, attempts, last_error,"
                    " incarnation, available_at_ms FROM messages"
                    " WHERE status IN ('queued', 'leased', 'retrying')"
                    " AND seq > %s ORDER BY seq LIMIT %s",
                    (last, batch_size),
                )
                rows = await cur.fetchall()
            if not rows:
                break
            last = int(rows[-1][0])
            pending: list[PendingMessage] = []
            for _, mid, rcp, envelope, attempts, last_error, incarnation, available in rows:
                if envelope is None:
                    skipped_without_envelope += 1
                    continue
                pending.append(
                    _pending(mid, rcp, envelope, attempts, last_error, incarnation, available)
                )
            flags = await coordinator.restore_messages(pending)
            done = [p for p, flag in zip(pending, flags, strict=True) if flag]
            await self.record(
                [
                    MessageEvent(
                        kind=LifecycleKind.RESTORED,
                        message_id=p.message_id,
                        recipient=p.recipient,
                        incarnation=p.incarnation,
                        attempts=p.attempts,
                        available_at_ms=p.available_at_ms,
                    )
                    for p in done
                ]
            )
            restored += len(done)
        if skipped_without_envelope:
            self._log.warning("restore_without_envelope", count=skipped_without_envelope)
        self._log.info("store_restored", restored=restored)
        return restored

    # --- queries ------------------------------------------------------------------------

    async def get(self, message_id: str, *, with_events: bool = True) -> list[StoredMessage]:
        """The records of ``message_id``, one per recipient (empty when unknown)."""
        async with self._tx("get") as conn:
            cur = await conn.execute(
                _select_messages("WHERE message_id = %s ORDER BY seq"),
                (message_id,),
            )
            rows = await cur.fetchall()
            events: dict[str, list[StoredEvent]] = {}
            if with_events and rows:
                cur = await conn.execute(
                    "SELECT recipient, seq, kind, status, attempts, error, failure, recorded_at"
                    " FROM message_events WHERE message_id = %s ORDER BY seq",
                    (message_id,),
                )
                for rcp, *rest in await cur.fetchall():
                    events.setdefault(str(rcp), []).append(_event(rest))
        return [_message(row, events.get(str(row[2]), [])) for row in rows]

    async def history(
        self,
        agent_id: AgentId,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[StoredMessage]:
        """Messages ``agent_id`` sent or received, newest first, at most ``limit``.

        ``since`` (inclusive) and ``until`` (exclusive) bound when the store first
        recorded them.
        """
        _check_limit(limit)
        agent = str(agent_id)
        query = _select_messages(
            "WHERE (recipient = %s OR sender = %s)"
            " AND (%s::timestamptz IS NULL OR created_at >= %s)"
            " AND (%s::timestamptz IS NULL OR created_at < %s) ORDER BY seq DESC LIMIT %s"
        )
        return await self._messages(
            "history", query, (agent, agent, since, since, until, until, limit)
        )

    async def conversation(self, correlation_id: str, *, limit: int = 1000) -> list[StoredMessage]:
        """Every message of one conversation (same ``correlation_id``), in order."""
        _check_limit(limit)
        query = _select_messages("WHERE correlation_id = %s ORDER BY seq LIMIT %s")
        return await self._messages("conversation", query, (correlation_id, limit))

    async def dead(self, agent_id: AgentId, *, limit: int = 100) -> list[StoredMessage]:
        """Dead-lettered messages of ``agent_id``'s queue, oldest first."""
        _check_limit(limit)
        query = _select_messages("WHERE recipient = %s AND status = 'dead' ORDER BY seq LIMIT %s")
        return await self._messages("dead", query, (str(agent_id), limit))

    async def agents(self, *, include_deregistered: bool = True) -> list[StoredAgent]:
        """The agent directory, by agent id."""
        async with self._tx("agents") as conn:
            cur = await conn.execute(
                "SELECT agent_id, name, capabilities, metadata, first_seen, last_seen,"
                " deregistered_at FROM agents WHERE %s OR deregistered_at IS NULL"
                " ORDER BY agent_id",
                (include_deregistered,),
            )
            rows = await cur.fetchall()
        return [
            StoredAgent(
                agent_id=AgentId.parse(str(r[0])),
                name=r[1],
                capabilities=list(r[2]),
                metadata=dict(r[3]),
                first_seen=r[4],
                last_seen=r[5],
                deregistered_at=r[6],
            )
            for r in rows
        ]

    async def stats(self) -> StoreStats:
        """Messages per status, events and agents."""
        async with self._tx("stats") as conn:
            cur = await conn.execute("SELECT status, count(*) FROM messages GROUP BY status")
            by_status = {MessageStatus(str(s)): int(n) for s, n in await cur.fetchall()}
            cur = await conn.execute(
                "SELECT (SELECT count(*) FROM message_events), (SELECT count(*) FROM agents)"
            )
            row = await cur.fetchone()
        assert row is not None
        counts = {status: by_status.get(status, 0) for status in MessageStatus}
        return StoreStats(messages=counts, events=int(row[0]), agents=int(row[1]))

    async def prune(self, *, older_than: timedelta | datetime) -> int:
        """Delete settled messages (and their events) settled before the cutoff.

        Also deletes agents deregistered before it. Unsettled messages are never pruned.
        Returns how many messages were deleted.
        """
        cutoff = older_than if isinstance(older_than, datetime) else datetime.now(UTC) - older_than
        if isinstance(older_than, timedelta) and older_than < timedelta(0):
            raise StoreConfigurationError(f"older_than must be >= 0, got {older_than}")
        async with self._tx("prune") as conn:
            cur = await conn.execute(
                "WITH gone AS (DELETE FROM messages WHERE settled_at < %s"
                " RETURNING message_id, recipient),"
                " ev AS (DELETE FROM message_events e USING gone"
                " WHERE e.message_id = gone.message_id AND e.recipient = gone.recipient)"
                " SELECT count(*) FROM gone",
                (cutoff,),
            )
            row = await cur.fetchone()
            await conn.execute("DELETE FROM agents WHERE deregistered_at < %s", (cutoff,))
        deleted = int(row[0]) if row is not None else 0
        self._log.info("store_pruned", deleted=deleted, cutoff=cutoff.isoformat())
        return deleted

    async def _messages(
        self, operation: str, query: sql.Composed, params: tuple[Any, ...]
    ) -> list[StoredMessage]:
        async with self._tx(operation) as conn:
            cur = await conn.execute(query, params)
            rows = await cur.fetchall()
        return [_message(row, []) for row in rows]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _check_limit(limit: int) -> None:
    if limit <= 0:
        raise StoreConfigurationError(f"limit must be > 0, got {limit}")


def _pending(
    message_id: Any,
    recipient: Any,
    envelope: Any,
    attempts: Any,
    last_error: Any,
    incarnation: Any,
    available_at_ms: Any,
) -> PendingMessage:
    data = json.loads(str(envelope))
    expires = data.get("expires_at")
    expires_ms = int(datetime.fromisoformat(expires).timestamp() * 1000) if expires else 0
    # The envelope was stored from JSON text: re-serialise it compactly for Redis.
    return PendingMessage(
        message_id=str(message_id),
        recipient=AgentId.parse(str(recipient)),
        envelope=json.dumps(data, separators=(",", ":"), ensure_ascii=False),
        priority=MessagePriority(int(data.get("priority", MessagePriority.NORMAL))),
        attempts=int(attempts),
        last_error=last_error,
        incarnation=int(incarnation),
        expires_at_ms=expires_ms,
        available_at_ms=int(available_at_ms),
    )


def _event(row: list[Any]) -> StoredEvent:
    seq, kind, status, attempts, error, failure, recorded_at = row
    return StoredEvent(
        seq=seq,
        kind=LifecycleKind(kind),
        status=MessageStatus(status),
        attempts=attempts,
        error=error,
        failure=failure,
        recorded_at=recorded_at,
    )


def _message(row: Sequence[Any], events: list[StoredEvent]) -> StoredMessage:
    (seq, mid, rcp, sender, corr, envelope, status, attempts, err, failure, created, updated,
     settled) = row  # fmt: skip
    return StoredMessage(
        seq=seq,
        message_id=mid,
        recipient=AgentId.parse(rcp),
        sender=AgentId.parse(sender) if sender else None,
        correlation_id=corr,
        message=AgentMessage.model_validate_json(envelope) if envelope is not None else None,
        status=MessageStatus(status),
        attempts=attempts,
        last_error=err,
        failure=failure,
        created_at=created,
        updated_at=updated,
        settled_at=settled,
        events=events,
    )
