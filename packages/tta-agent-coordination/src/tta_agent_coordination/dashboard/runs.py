"""Pages of plan runs for the dashboard, read through ``plans.RunAdmin``'s store.

The run listing is the plan runtime's own index (a sorted set of run ids by creation
time, ``PlanKeys.index``), read newest first one page at a time: a page is one
``ZREVRANGEBYSCORE ... LIMIT`` and one pipelined round trip for the page's runs, never a
walk over every run. A status filter has no index of its own: a filtered page examines
at most :data:`FILTER_SCAN_LIMIT` index entries (in steps of the page size) and says
where it stopped, so a rare status costs a few "older" clicks, never a full scan.

A cursor is ``<created_ms>:<skip>``: the next page starts at runs created at or before
``created_ms``, skipping the ``skip`` runs of that very millisecond already shown, so a
page boundary inside one millisecond neither repeats nor loses a run, and runs started
meanwhile do not shift the pages.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, cast

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.plans import RunAdmin, RunEvent, RunMode, RunState, RunStatus
from tta_agent_coordination.redis.codec import text

__all__ = ["FILTER_SCAN_LIMIT", "RunPage", "RunPages", "RunRow"]

FILTER_SCAN_LIMIT = 1000
"""Index entries a status-filtered page examines at most before it returns."""

_CURSOR = re.compile(r"^([0-9]{1,16}):([0-9]{1,6})$")
_ENTRY_ID = re.compile(r"^(0|[0-9]{1,20}-[0-9]{1,20})$")


def _steps_done(state: RunState) -> int:
    return len(
        {r.index for r in state.records if r.result.ok and r.plan_version == state.plan_version}
    )


@dataclass(frozen=True)
class RunRow:
    """One run as the run list shows it."""

    run_id: str
    status: RunStatus
    mode: RunMode
    steps_done: int
    """Steps of the current plan that succeeded."""
    attempts: int
    """Finished step attempts, retries and earlier plans' included (``len(state.records)``)."""
    steps_planned: int | None
    """Steps of the current plan; None before the run has a plan."""
    created_ms: int
    age_s: float
    """Seconds since the run was created (this host's clock)."""
    reason: str | None


@dataclass(frozen=True)
class RunPage:
    """One page of the run list."""

    rows: list[RunRow]
    next_cursor: str | None
    """Pass as ``cursor`` for older runs; None when the index has no more."""
    examined: int
    """Index entries this page read (more than ``len(rows)`` with a status filter)."""
    total: int
    """Runs in the index (expired ones leave it when ``RunAdmin.list_runs`` prunes it)."""


def parse_cursor(cursor: str | None) -> tuple[str, int]:
    """The ``(max score, skip)`` a cursor stands for (the newest runs without one).

    Raises:
        ConfigurationError: the cursor is not ``<created_ms>:<skip>``.
    """
    if not cursor:
        return "+inf", 0
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        raise ConfigurationError(f"invalid run cursor {cursor!r}: expected <created_ms>:<skip>")
    return match.group(1), int(match.group(2))


class RunPages:
    """The runs of one deployment, a page at a time (see the module docstring).

    Args:
        admin: reads, follows and cancels runs (its ``store`` holds the keys).
        redis: the client the runs' keys are read with (the coordinator's).
    """

    def __init__(self, admin: RunAdmin, redis: RedisClient) -> None:
        self.admin = admin
        self._redis = redis

    async def page(
        self, *, cursor: str | None = None, count: int = 50, status: RunStatus | None = None
    ) -> RunPage:
        """Up to ``count`` runs, newest first, from ``cursor``; only ``status`` ones if given.

        Raises:
            ConfigurationError: ``cursor`` is malformed.
        """
        index = self.admin.store.keys.index
        top, skip = parse_cursor(cursor)
        rows: list[RunRow] = []
        examined = 0
        exhausted = False
        last_score: int | None = None
        same_score = 0
        budget = count if status is None else max(count, FILTER_SCAN_LIMIT)
        while len(rows) < count and examined < budget:
            step = min(count, budget - examined)
            raw = cast(
                "list[tuple[Any, float]]",
                await self._redis.zrevrangebyscore(
                    index, top, "-inf", start=skip, num=step, withscores=True
                ),
            )
            if not raw:
                exhausted = True
                break
            entries = [(text(member), int(score)) for member, score in raw]
            shown = await self._rows(entries, status)
            full = False
            for run_id, score in entries:
                # Where the next step (or page) starts: at this score, past those seen.
                if score == last_score:
                    same_score += 1
                else:
                    same_score = 1 if str(score) != top else skip + 1
                    last_score = score
                examined += 1
                if run_id in shown:
                    rows.append(shown[run_id])
                    if len(rows) == count:
                        full = True  # the page ends here: the next one starts after it
                        break
            assert last_score is not None
            top, skip = str(last_score), same_score
            if not full and len(entries) < step:
                exhausted = True
                break
        total = int(await self._redis.zcard(index))
        next_cursor = None if exhausted or last_score is None else f"{top}:{skip}"
        return RunPage(rows, next_cursor, examined, total)

    async def _rows(
        self, entries: list[tuple[str, int]], status: RunStatus | None
    ) -> dict[str, RunRow]:
        """The rows of ``entries`` that exist and match ``status``, by run id."""
        keys = self.admin.store.keys
        async with self._redis.pipeline(transaction=False) as pipe:
            for run_id, _ in entries:
                pipe.hget(keys.run(run_id).state, "status")
            statuses: list[Any] = await pipe.execute()
        wanted = [
            run_id
            for (run_id, _), raw in zip(entries, statuses, strict=True)
            if raw is not None and (status is None or text(raw) == status.value)
        ]
        if not wanted:
            return {}
        # Only the runs shown are decoded; an expired run (no state) is left out.
        async with self._redis.pipeline(transaction=False) as pipe:
            for run_id in wanted:
                pipe.hget(keys.run(run_id).state, "doc")
            docs: list[Any] = await pipe.execute()
        now_ms = int(time.time() * 1000)
        rows: dict[str, RunRow] = {}
        for run_id, doc in zip(wanted, docs, strict=True):
            if doc is None:
                continue  # expired between the two round trips
            state = RunState.model_validate_json(text(doc))
            rows[run_id] = RunRow(
                run_id=state.run_id,
                status=state.status,
                mode=state.mode,
                steps_done=_steps_done(state),
                attempts=len(state.records),
                steps_planned=len(state.plan.steps) if state.plan is not None else None,
                created_ms=state.created_ms,
                age_s=max(now_ms - state.created_ms, 0) / 1000,
                reason=state.reason,
            )
        return rows

    async def run(self, run_id: str) -> RunState | None:
        """The run's state now; None when there is no such run (or it expired).

        Raises:
            ConfigurationError: ``run_id`` is not a valid run id.
        """
        return await self.admin.store.load(run_id)

    async def events(self, run_id: str, after: str = "0", count: int = 100) -> list[RunEvent]:
        """Up to ``count`` of the run's events after the entry id ``after``.

        Raises:
            ConfigurationError: ``run_id`` or ``after`` (``0`` or a stream entry id) is
                malformed.
        """
        if not _ENTRY_ID.fullmatch(after):
            raise ConfigurationError(f"invalid event id {after!r}: expected 0 or <ms>-<seq>")
        return await self.admin.store.read_events(run_id, after, count)
