"""The dashboard's plan-run pages: the run list, a run's detail, and cancelling a run.

Reads go through :class:`~tta_agent_coordination.dashboard.runs.RunPages` (one index page
per view); a cancel is ``RunAdmin.cancel`` behind the same confirmation page and token
as replay and purge, and is logged (``dashboard_write``, ``action=cancel_run``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tta_agent_coordination.dashboard.params import query_int
from tta_agent_coordination.dashboard.sources import DashboardSources
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.plans import RunNotFoundError, RunState, RunStatus, StepRecord

__all__ = ["EVENTS_PAGE", "StepRow", "run_routes", "step_rows"]

EVENTS_PAGE = 100
"""Events a run's page shows at once (older ones first; "later events" pages on)."""

DEFAULT_CANCEL_REASON = "cancelled from the dashboard"
"""The reason a cancel records when the form gives none."""

_MAX_REASON = 200
_log = get_logger(__name__)


class Render(Protocol):
    """The application's page renderer (``create_app``'s ``render``)."""

    def __call__(
        self, request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> Response:
        """The page ``name`` (or its live part, for htmx) with ``context``."""
        ...


Authorise = Callable[[Request, str, dict[str, str]], Awaitable[dict[str, str]]]
"""Checks a write's token and confirmation; its form values (``create_app``'s)."""


@dataclass(frozen=True)
class StepRow:
    """One step of a run's current plan, with what happened to it."""

    index: int
    step_id: str
    agent: str
    state: str
    """``pending``, ``running``, ``reflecting``, ``succeeded`` or ``failed``."""
    attempts: list[StepRecord]
    """Its finished attempts under the current plan version."""


def step_rows(state: RunState) -> list[StepRow]:
    """The current plan's steps with their state and finished attempts."""
    if state.plan is None:
        return []
    rows: list[StepRow] = []
    for index, step in enumerate(state.plan.steps):
        attempts = [
            r for r in state.records if r.index == index and r.plan_version == state.plan_version
        ]
        current = state.current_step is not None and state.cursor == index
        if current and state.status is RunStatus.RUNNING:
            label = "running"
        elif current and state.status is RunStatus.REFLECTING:
            label = "reflecting"
        elif attempts and attempts[-1].result.ok:
            label = "succeeded"
        elif attempts:
            label = "failed"
        else:
            label = "pending"
        rows.append(StepRow(index, step.id, str(step.agent), label, attempts))
    return rows


def _not_found(run_id: str) -> str:
    return f"run {run_id!r} not found (never started, or expired)"


def _status(request: Request) -> RunStatus | None:
    raw = request.query_params.get("status") or ""
    if not raw:
        return None
    try:
        return RunStatus(raw)
    except ValueError:
        known = ", ".join(s.value for s in RunStatus)
        raise HTTPException(400, f"unknown run status {raw!r} (one of {known})") from None


def run_routes(
    sources: DashboardSources, render: Render, authorise: Authorise, page_size: int
) -> list[Route]:
    """The routes of the run pages (``/runs``...), mounted by ``create_app``."""

    async def runs(request: Request) -> Response:
        status = _status(request)
        cursor = request.query_params.get("cursor") or None
        count = query_int(request, "count", page_size, 1, 200)
        page = await sources.runs.page(cursor=cursor, count=count, status=status)
        next_url = None
        if page.next_cursor is not None:
            query = {
                "cursor": page.next_cursor,
                "count": count,
                **({"status": status.value} if status else {}),
            }
            next_url = "runs?" + urlencode(query)
        return render(
            request,
            "runs.html",
            {
                "page": "runs",
                "rows": page.rows,
                "total": page.total,
                "examined": page.examined,
                "next_url": next_url,
                "first": cursor is None,
                "status": status.value if status else "",
                "statuses": [s.value for s in RunStatus],
                "live": "_runs.html",
            },
        )

    async def _state(run_id: str) -> RunState:
        state = await sources.runs.run(run_id)
        if state is None:
            raise HTTPException(404, _not_found(run_id)) from None
        return state

    async def run(request: Request) -> Response:
        run_id = str(request.path_params["run_id"])
        state = await _state(run_id)
        after = request.query_params.get("after") or "0"
        events = await sources.runs.events(run_id, after, EVENTS_PAGE)
        return render(
            request,
            "run.html",
            {
                "page": "runs",
                "run": state,
                "steps": step_rows(state),
                "events": events,
                "after": after,
                "later": events[-1].id if len(events) == EVENTS_PAGE else None,
                "notice": request.query_params.get("notice"),
                "live": "_run.html",
            },
        )

    async def confirm(request: Request) -> Response:
        state = await _state(str(request.path_params["run_id"]))
        return render(request, "confirm_run.html", {"page": "runs", "run": state})

    async def cancel(request: Request) -> Response:
        run_id = str(request.path_params["run_id"])
        values = await authorise(request, "cancel_run", {"run_id": run_id})
        reason = (values.get("reason") or "").strip()[:_MAX_REASON] or DEFAULT_CANCEL_REASON
        assert sources.runs_admin is not None
        try:
            applied = await sources.runs_admin.cancel(run_id, reason)
        except RunNotFoundError:
            raise HTTPException(404, _not_found(run_id)) from None
        _log.info(
            "dashboard_write",
            action="cancel_run",
            run_id=run_id,
            reason=reason,
            applied=applied,
            client=request.client.host if request.client else None,
        )
        notice = "Cancelled the run." if applied else "The run had ended already: nothing changed."
        base = str(request.scope.get("root_path", ""))
        url = f"{base}/runs/{quote(run_id, safe='')}?" + urlencode({"notice": notice})
        return RedirectResponse(url, 303)

    return [
        Route("/runs", runs),
        Route("/runs/{run_id}", run),
        Route("/runs/{run_id}/confirm", confirm),
        Route("/runs/{run_id}/cancel", cancel, methods=["POST"]),
    ]
