"""The dashboard's Starlette application: server-rendered pages refreshed by htmx.

Pages render on the server with Jinja2; htmx (vendored in ``static/``, no CDN) refreshes
each page's live part every two seconds by asking the same URL with ``HX-Request``, which
renders only that part. Writes (replay, purge) are POSTs behind a confirmation page and
the token (see :mod:`tta_agent_coordination.dashboard.auth`), and each one is logged.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
import redis.exceptions
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from tta_agent_coordination.dashboard.auth import TokenCheck, check_token
from tta_agent_coordination.dashboard.interaction_routes import interaction_routes
from tta_agent_coordination.dashboard.params import query_int
from tta_agent_coordination.dashboard.run_routes import run_routes
from tta_agent_coordination.dashboard.sources import DashboardSources
from tta_agent_coordination.errors import (
    CircuitBreakerOpenError,
    CoordinationError,
    CoordinatorUnavailableError,
    RegistryUnavailableError,
)
from tta_agent_coordination.models import AgentId, DeadLetter
from tta_agent_coordination.observability.logging import get_logger

__all__ = ["REFRESH_S", "create_app"]

REFRESH_S = 2
"""Seconds between two refreshes of a page's live part."""

_PACKAGE = "tta_agent_coordination.dashboard"
_log = get_logger(__name__)
_UNAVAILABLE = (
    CoordinatorUnavailableError,
    RegistryUnavailableError,
    CircuitBreakerOpenError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(_PACKAGE, "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["age"] = _age
    env.filters["path"] = lambda value: quote(str(value), safe=":")
    env.filters["pretty_json"] = lambda value: json.dumps(value, indent=2, sort_keys=True)
    return Jinja2Templates(env=env)


def _agent(request: Request) -> AgentId:
    return AgentId.parse(str(request.path_params["agent"]))


def create_app(
    sources: DashboardSources, *, token: str | None = None, page_size: int = 50
) -> Starlette:
    """The dashboard over ``sources``; writable only with a ``token`` (read-only without).

    Mount it in another ASGI application, or serve it (``tta-coord dashboard`` does,
    with uvicorn). The caller owns ``sources`` (its Redis client, coordinator, registry).
    """
    templates = _templates()
    writable = bool(token)

    def render(
        request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> Response:
        live = request.headers.get("HX-Request") == "true" and "live" in context
        base = str(request.scope.get("root_path", ""))
        full = {
            "base": base,
            "prefix": sources.prefix,
            "writable": writable,
            "has_history": sources.has_history,
            "refresh_s": REFRESH_S,
            "live_url": str(request.url.path)
            + ("?" + request.url.query if request.url.query else ""),
            **context,
        }
        return templates.TemplateResponse(
            request, context["live"] if live else name, full, status_code=status_code
        )

    async def index(request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/queues", 302)

    async def agents(request: Request) -> Response:
        groups = await sources.agent_groups()
        return render(
            request, "agents.html", {"groups": groups, "live": "_agents.html", "page": "agents"}
        )

    async def queues(request: Request) -> Response:
        cursor = request.query_params.get("cursor", "0")
        count = query_int(request, "count", page_size, 1, 200)
        contains = request.query_params.get("q") or None
        page = await sources.queue_rows(cursor=cursor, count=count, contains=contains)
        next_url = None
        if page.next_cursor is not None:
            query = {
                "cursor": page.next_cursor,
                "count": count,
                **({"q": contains} if contains else {}),
            }
            next_url = "queues?" + urlencode(query)
        return render(
            request,
            "queues.html",
            {
                "page": "queues",
                "rows": page.rows,
                "total": page.total,
                "next_url": next_url,
                "first": cursor == "0",
                "q": contains or "",
                "live": "_queues.html",
            },
        )

    async def queue(request: Request) -> Response:
        agent_id = _agent(request)
        count = query_int(request, "count", page_size, 1, 500)
        letters = await sources.dead_letter_page(
            agent_id,
            after=request.query_params.get("after") or None,
            before=request.query_params.get("before") or None,
            count=count,
        )
        rows = await sources.queue_rows_of([agent_id])
        return render(
            request,
            "queue.html",
            {
                "page": "queues",
                "agent": agent_id,
                "row": rows[0],
                "letters": letters,
                "count": count,
                "notice": request.query_params.get("notice"),
                "live": "_queue.html",
            },
        )

    async def dead_letter(request: Request) -> Response:
        agent_id = _agent(request)
        letter = await sources.dead_letter(agent_id, str(request.path_params["dead_letter_id"]))
        if letter is None:
            raise HTTPException(404, "this dead letter is gone (replayed or purged)")
        history = await sources.history(letter.message_id) if letter.message_id else []
        return render(
            request,
            "dead_letter.html",
            {
                "page": "queues",
                "agent": agent_id,
                "letter": letter,
                "deliverable": isinstance(letter, DeadLetter),
                "history": history,
            },
        )

    async def confirm(request: Request) -> Response:
        agent_id = _agent(request)
        action = request.query_params.get("action", "")
        if action not in ("replay", "purge"):
            raise HTTPException(400, "action must be replay or purge")
        stats = await sources.coordinator.queue_stats(agent_id)
        return render(
            request,
            "confirm.html",
            {
                "page": "queues",
                "agent": agent_id,
                "action": action,
                "message_id": request.query_params.get("message_id") or None,
                "dead": stats.dead,
            },
        )

    async def _authorise(request: Request, action: str, target: dict[str, str]) -> dict[str, str]:
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        given = values.get("token")
        header = request.headers.get("Authorization", "")
        if not given and header.startswith("Bearer "):
            given = header[len("Bearer ") :]
        outcome = check_token(token, given)
        if outcome is not TokenCheck.ALLOWED:
            _log.warning(
                "dashboard_write_refused",
                action=action,
                **target,
                reason=outcome.value,
                client=request.client.host if request.client else None,
            )
            detail = (
                "this dashboard is read-only (started without --token)"
                if outcome is TokenCheck.READ_ONLY
                else f"{outcome.value} token: nothing was changed"
            )
            raise HTTPException(403, detail)
        if values.get("confirm") != "yes":
            raise HTTPException(400, "the write was not confirmed (confirm=yes)")
        return values

    def _done(request: Request, agent_id: AgentId, notice: str) -> Response:
        base = str(request.scope.get("root_path", ""))
        url = f"{base}/queues/{quote(str(agent_id), safe=':')}?" + urlencode({"notice": notice})
        return RedirectResponse(url, 303)

    async def replay(request: Request) -> Response:
        agent_id = _agent(request)
        values = await _authorise(request, "replay", {"queue": str(agent_id)})
        message_id = values.get("message_id") or None
        replayed = await sources.coordinator.replay_dead_letters(
            agent_id, None if message_id is None else [message_id]
        )
        _log.info(
            "dashboard_write",
            action="replay",
            queue=str(agent_id),
            message_id=message_id or "*",
            count=replayed,
            client=request.client.host if request.client else None,
        )
        what = f"message {message_id}" if message_id else "all dead letters"
        return _done(request, agent_id, f"Replayed {replayed} ({what}).")

    async def purge(request: Request) -> Response:
        agent_id = _agent(request)
        await _authorise(request, "purge", {"queue": str(agent_id)})
        purged = await sources.coordinator.purge_dead_letters(agent_id)
        _log.info(
            "dashboard_write",
            action="purge",
            queue=str(agent_id),
            count=purged,
            client=request.client.host if request.client else None,
        )
        return _done(request, agent_id, f"Purged {purged} dead letters.")

    async def breakers(request: Request) -> Response:
        rows = await sources.breakers()
        return render(
            request,
            "breakers.html",
            {
                "page": "breakers",
                "rows": rows,
                "complete": sources.breakers_complete,
                "live": "_breakers.html",
            },
        )

    async def message(request: Request) -> Response:
        message_id = (request.query_params.get("id") or "").strip()
        history = await sources.history(message_id) if message_id else []
        return render(
            request,
            "message.html",
            {"page": "messages", "message_id": message_id, "history": history},
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return render(
            request,
            "error.html",
            {"status": exc.status_code, "detail": exc.detail},
            exc.status_code,
        )

    async def bad_input(request: Request, exc: Exception) -> Response:
        return render(request, "error.html", {"status": 400, "detail": str(exc)}, 400)

    async def unavailable(request: Request, exc: Exception) -> Response:
        _log.warning("dashboard_unavailable", error=f"{type(exc).__name__}: {exc}")
        detail = f"Redis is not answering ({type(exc).__name__}); this page retries by itself"
        return render(request, "error.html", {"status": 503, "detail": detail}, 503)

    handlers: dict[Any, Any] = {HTTPException: http_error, CoordinationError: bad_input}
    handlers.update(dict.fromkeys(_UNAVAILABLE, unavailable))
    return Starlette(
        routes=[
            Route("/", index),
            Route("/agents", agents),
            Route("/queues", queues),
            Route("/queues/{agent}", queue),
            Route("/queues/{agent}/dead/{dead_letter_id}", dead_letter),
            Route("/queues/{agent}/confirm", confirm),
            Route("/queues/{agent}/replay", replay, methods=["POST"]),
            Route("/queues/{agent}/purge", purge, methods=["POST"]),
            Route("/breakers", breakers),
            Route("/messages", message),
            *run_routes(sources, render, _authorise, page_size),
            *interaction_routes(sources, render, page_size),
            Mount("/static", StaticFiles(packages=[(_PACKAGE, "static")]), name="static"),
        ],
        exception_handlers=handlers,
    )
