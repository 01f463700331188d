"""The dashboard's meeting and conversation pages (read-only).

``/meetings`` lists meetings newest first, a page of the meetings' index at a time;
``/meetings/{meeting_id}`` shows one meeting's status, participants and history, its
live part refreshing while the meeting has not ended; ``/conversations`` lists the
directory's organizations with their agents and each agent's unread inbox count. All
reads go through :class:`~tta_agent_coordination.dashboard.interaction_pages.InteractionPages`.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tta_agent_coordination.dashboard.interaction_pages import AGENTS_PER_ORGANIZATION
from tta_agent_coordination.dashboard.params import query_int
from tta_agent_coordination.dashboard.run_routes import Render
from tta_agent_coordination.dashboard.sources import DashboardSources
from tta_agent_coordination.interactions import MeetingStatusValue

__all__ = ["HISTORY_PAGE", "interaction_routes"]

HISTORY_PAGE = 100
"""Events a meeting's page shows at once (oldest first; "later events" pages on)."""


def interaction_routes(sources: DashboardSources, render: Render, page_size: int) -> list[Route]:
    """The routes of the meeting and conversation pages, mounted by ``create_app``."""
    pages = sources.interactions

    async def meetings(request: Request) -> Response:
        cursor = request.query_params.get("cursor") or None
        count = query_int(request, "count", page_size, 1, 200)
        page = await pages.meetings(cursor=cursor, count=count)
        next_url = None
        if page.next_cursor is not None:
            next_url = "meetings?" + urlencode({"cursor": page.next_cursor, "count": count})
        return render(
            request,
            "meetings.html",
            {
                "page": "meetings",
                "rows": page.rows,
                "total": page.total,
                "next_url": next_url,
                "first": cursor is None,
                "live": "_meetings.html",
            },
        )

    async def meeting(request: Request) -> Response:
        meeting_id = str(request.path_params["meeting_id"])
        status = await pages.meeting(meeting_id)
        if status is None:
            raise HTTPException(
                404, f"meeting {meeting_id!r} not found (never created, or expired)"
            )
        after = request.query_params.get("after") or "-"
        events = await pages.history(meeting_id, after=after, count=HISTORY_PAGE)
        return render(
            request,
            "meeting.html",
            {
                "page": "meetings",
                "meeting": status,
                "ended": status.status is MeetingStatusValue.ENDED,
                "deadline_in": (status.deadline - status.now).total_seconds()
                if status.deadline is not None
                else None,
                "events": events,
                "after": after,
                "later": events[-1].event_id if len(events) == HISTORY_PAGE else None,
                "live": "_meeting.html",
            },
        )

    async def conversations(request: Request) -> Response:
        cursor = request.query_params.get("cursor") or "0"
        count = query_int(request, "count", page_size, 1, 200)
        page = await pages.organizations(cursor=cursor, count=count)
        next_url = None
        if page.next_cursor is not None:
            next_url = "conversations?" + urlencode({"cursor": page.next_cursor, "count": count})
        return render(
            request,
            "conversations.html",
            {
                "page": "conversations",
                "rows": page.rows,
                "total": page.total,
                "next_url": next_url,
                "first": cursor == "0",
                "agents_cap": AGENTS_PER_ORGANIZATION,
                "live": "_conversations.html",
            },
        )

    return [
        Route("/meetings", meetings),
        Route("/meetings/{meeting_id}", meeting),
        Route("/conversations", conversations),
    ]
