"""``PostgresPlanRunStore``: plan runs recorded in Postgres, restored after a Redis loss.

::

    async with PostgresMessageStore(dsn, schema="agents") as store:
        await store.migrate()                    # migration 0004 creates the run tables
        runs = PostgresPlanRunStore(store)
        runtime = PlanRuntime(coordinator, planner=planner, store=runs)
        ...
        await runtime.restore()                  # after Redis was lost
        await runs.runs(status="completed", limit=20)

It implements the core's ``tta_agent_coordination.plans.record.RunRecorder`` (the newest
snapshot of each run, never replaced by an older version, and each run event once) on the
message store's pool and schema, and answers history queries. See ``docs/plans.md``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from tta_agent_coordination.plans.models import RunMode, RunResult, RunStatus
from tta_agent_coordination.plans.record import RunChange
from tta_agent_coordination.plans.state import RunState
from tta_agent_coordination.store import StorePayloadError
from tta_agent_coordination_postgres.errors import StoreConfigurationError
from tta_agent_coordination_postgres.store import PostgresMessageStore

__all__ = ["PostgresPlanRunStore", "StoredRun", "StoredRunEvent"]

_LIVE = tuple(s.value for s in RunStatus if not s.terminal)

# A snapshot replaces the stored one only when its version is higher: changes may be
# recorded late (write-behind) or twice (write-through after write-behind).
_UPSERT_RUN = """
INSERT INTO plan_runs AS r (scope, run_id, task, status, mode, version, state, created_at,
    ended_at)
VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s::jsonb,
    COALESCE(to_timestamp(NULLIF(%s, 0) / 1000.0), now()), CASE WHEN %s THEN now() END)
ON CONFLICT (scope, run_id) DO UPDATE SET
    task = excluded.task, status = excluded.status, mode = excluded.mode,
    version = excluded.version, state = excluded.state, updated_at = now(),
    ended_at = COALESCE(r.ended_at, excluded.ended_at)
WHERE excluded.version > r.version
"""

_INSERT_EVENT = """
INSERT INTO plan_run_events (scope, run_id, version, ordinal, kind, data)
VALUES (%s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT DO NOTHING
"""

_RUN_COLUMNS = (
    "SELECT scope, run_id, status, mode, version, state::text, created_at, updated_at, ended_at"
    " FROM plan_runs"
)


class StoredRun(BaseModel):
    """The newest recorded snapshot of one run.

    Attributes:
        scope: the runtime's key prefix and instance (``prefix/instance``).
        run_id: the run's id (unique within its scope).
        status: its status in the snapshot.
        mode: how it executes its task.
        version: the run's state version the snapshot was taken at.
        state: the whole run state (plan, step records, messages, result).
        created_at: when the run was created.
        updated_at: when the snapshot was recorded.
        ended_at: when the store first recorded it ended; None while it is live.
    """

    model_config = ConfigDict(frozen=True)

    scope: str
    run_id: str
    status: RunStatus
    mode: RunMode
    version: int
    state: RunState
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None

    @property
    def result(self) -> RunResult:
        """The run as a ``RunResult`` (its steps so far, when it is still live)."""
        return self.state.to_result()


class StoredRunEvent(BaseModel):
    """One recorded run event.

    Attributes:
        seq: its position in the store (orders events of one run as they were recorded).
        version: the run's state version the event was written with.
        kind: as ``RunEvent.kind`` (``planned``, ``step_started``, ``completed``...).
        data: details of the event.
        recorded_at: when the store received it.
    """

    model_config = ConfigDict(frozen=True)

    seq: int
    run_id: str
    version: int
    kind: str
    data: dict[str, Any]
    recorded_at: datetime


class PostgresPlanRunStore:
    """Plan runs in Postgres, on a :class:`PostgresMessageStore`'s pool and schema.

    Pass it to ``PlanRuntime(..., store=...)``. The tables come from the package's
    migrations (``0004_plan_runs``): run ``await store.migrate()`` first.

    Args:
        store: the message store whose connections and schema it uses (open and close
            that store; this one owns nothing).
    """

    def __init__(self, store: PostgresMessageStore) -> None:
        self._store = store

    @property
    def schema(self) -> str:
        """The schema the runs live in."""
        return self._store.schema

    # --- RunRecorder ----------------------------------------------------------------------

    async def record_runs(self, changes: Sequence[RunChange]) -> None:
        """Record run snapshots and their events in one transaction (idempotent).

        Raises:
            StorePayloadError: a state holds a NUL character (Postgres JSON cannot).
            StoreNotMigratedError: the schema has no run tables (run ``migrate``).
            StoreUnavailableError: Postgres failed; nothing was written.
        """
        if not changes:
            return
        runs: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        # One order for every writer, so that concurrent transactions cannot deadlock.
        for change in sorted(changes, key=lambda c: (c.scope, c.state.run_id, c.state.version)):
            state = change.state
            doc = state.model_dump_json()
            _check_json(state.run_id, doc)
            runs.append(
                (
                    change.scope,
                    state.run_id,
                    state.task.model_dump_json(),
                    state.status.value,
                    state.mode.value,
                    state.version,
                    doc,
                    state.created_ms,
                    state.status.terminal,
                )
            )
            for ordinal, (kind, data) in enumerate(change.events):
                payload = _json(data)
                _check_json(state.run_id, payload)
                events.append((change.scope, state.run_id, state.version, ordinal, kind, payload))
        async with self._store.transaction("record plan runs") as conn, conn.cursor() as cur:
            await cur.executemany(_UPSERT_RUN, runs)
            if events:
                await cur.executemany(_INSERT_EVENT, events)

    async def unfinished_runs(self, scope: str) -> list[RunState]:
        """The newest snapshot of every live run of ``scope``, oldest run first.

        Raises:
            StoreNotMigratedError: the schema has no run tables.
            StoreUnavailableError: Postgres failed.
        """
        async with self._store.transaction("unfinished plan runs") as conn:
            cur = await conn.execute(
                "SELECT state::text, version FROM plan_runs WHERE scope = %s AND status = ANY(%s)"
                " ORDER BY created_at, run_id",
                (scope, list(_LIVE)),
            )
            rows = await cur.fetchall()
        return [_state(row[0], row[1]) for row in rows]

    # --- history --------------------------------------------------------------------------

    async def run(self, run_id: str, *, scope: str | None = None) -> StoredRun | None:
        """The newest snapshot of ``run_id`` (in ``scope``, or the latest in any); None.

        Raises:
            StoreUnavailableError: Postgres failed.
        """
        async with self._store.transaction("plan run") as conn:
            cur = await conn.execute(
                _RUN_COLUMNS + " WHERE run_id = %s AND (%s::text IS NULL OR scope = %s)"
                " ORDER BY updated_at DESC LIMIT 1",
                (run_id, scope, scope),
            )
            row = await cur.fetchone()
        return None if row is None else _run(row)

    async def runs(
        self,
        *,
        status: RunStatus | str | None = None,
        scope: str | None = None,
        limit: int = 50,
    ) -> list[StoredRun]:
        """The newest ``limit`` runs, optionally of one ``status`` and ``scope``.

        Raises:
            StoreConfigurationError: ``status`` is not a run status, or ``limit`` <= 0.
            StoreUnavailableError: Postgres failed.
        """
        if limit <= 0:
            raise StoreConfigurationError(f"limit must be > 0, got {limit}")
        wanted: str | None = None
        if status is not None:
            try:
                wanted = RunStatus(status).value
            except ValueError:
                known = ", ".join(s.value for s in RunStatus)
                raise StoreConfigurationError(
                    f"unknown run status {status!r}; use one of {known}"
                ) from None
        async with self._store.transaction("plan runs") as conn:
            cur = await conn.execute(
                _RUN_COLUMNS + " WHERE (%s::text IS NULL OR status = %s)"
                " AND (%s::text IS NULL OR scope = %s)"
                " ORDER BY created_at DESC, run_id LIMIT %s",
                (wanted, wanted, scope, scope, limit),
            )
            rows = await cur.fetchall()
        return [_run(row) for row in rows]

    async def run_events(
        self, run_id: str, *, scope: str | None = None, limit: int = 1000
    ) -> list[StoredRunEvent]:
        """The recorded events of ``run_id``, in order (at most ``limit``).

        Raises:
            StoreConfigurationError: ``limit`` <= 0.
            StoreUnavailableError: Postgres failed.
        """
        if limit <= 0:
            raise StoreConfigurationError(f"limit must be > 0, got {limit}")
        async with self._store.transaction("plan run events") as conn:
            cur = await conn.execute(
                "SELECT seq, run_id, version, kind, data, recorded_at FROM plan_run_events"
                " WHERE run_id = %s AND (%s::text IS NULL OR scope = %s)"
                " ORDER BY version, ordinal, seq LIMIT %s",
                (run_id, scope, scope, limit),
            )
            rows = await cur.fetchall()
        return [
            StoredRunEvent(
                seq=int(r[0]),
                run_id=str(r[1]),
                version=int(r[2]),
                kind=str(r[3]),
                data=dict(r[4]),
                recorded_at=r[5],
            )
            for r in rows
        ]


def _json(data: dict[str, Any]) -> str:
    """Event data as compact, key-sorted JSON (as in Redis)."""
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _check_json(run_id: str, doc: str) -> None:
    if "\\u0000" in doc:
        raise StorePayloadError(
            f"run {run_id!r} holds a NUL character (\\u0000), which Postgres cannot store "
            "in JSON; remove it or encode the data (e.g. base64)"
        )


def _state(doc: Any, version: Any) -> RunState:
    return RunState.model_validate_json(str(doc)).model_copy(update={"version": int(version)})


def _run(row: Sequence[Any]) -> StoredRun:
    return StoredRun(
        scope=str(row[0]),
        run_id=str(row[1]),
        status=RunStatus(str(row[2])),
        mode=RunMode(str(row[3])),
        version=int(row[4]),
        state=_state(row[5], row[4]),
        created_at=row[6],
        updated_at=row[7],
        ended_at=row[8],
    )
