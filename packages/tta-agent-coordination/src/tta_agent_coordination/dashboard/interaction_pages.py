"""Pages of meetings and conversations for the dashboard, read through the interactions.

Meetings are listed from the meetings' own index (``InteractionKeys.meetings_all``, a
sorted set of meeting ids by creation time), newest first, one page at a time: a page is
one ``ZREVRANGEBYSCORE ... LIMIT`` and one ``get_meeting_status`` per meeting shown. The
cursor is the plan-run pages' ``<created_ms>:<skip>`` (see ``dashboard.runs``).

Conversations are shown per organization: a page of organizations is one ``SSCAN`` step
of the directory's organization set; each organization shows its agent count (``SCARD``)
and at most :data:`AGENTS_PER_ORGANIZATION` of its agents, each with its unread inbox
count (one pipelined ``ZCARD`` per agent shown). Nothing walks every meeting, organization
or inbox per page view.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.dashboard.runs import parse_cursor
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.interactions import (
    AgentMessaging,
    MeetingEvent,
    MeetingNotFoundError,
    MeetingStatus,
)
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.codec import text

__all__ = [
    "AGENTS_PER_ORGANIZATION",
    "InteractionPages",
    "MeetingPage",
    "MeetingRow",
    "OrganizationPage",
    "OrganizationRow",
]

AGENTS_PER_ORGANIZATION = 100
"""Agents an organization shows at most on the conversations page."""


@dataclass(frozen=True)
class MeetingRow:
    """One meeting as the meeting list shows it."""

    status: MeetingStatus
    deadline_in_s: float | None
    """Seconds left in the current turn (server clock; negative once overdue)."""

    @property
    def participants(self) -> int:
        """How many participants it has (any state)."""
        return len(self.status.participants)


@dataclass(frozen=True)
class MeetingPage:
    """One page of the meeting list."""

    rows: list[MeetingRow]
    next_cursor: str | None
    """Pass as ``cursor`` for older meetings; None when the index has no more."""
    total: int
    """Meetings in the index."""


@dataclass(frozen=True)
class AgentInbox:
    """An agent of the directory with its unread inbox count."""

    agent_id: AgentId
    unread: int


@dataclass(frozen=True)
class OrganizationRow:
    """One organization with (up to :data:`AGENTS_PER_ORGANIZATION` of) its agents."""

    org_id: str
    agent_count: int
    agents: list[AgentInbox]
    """Sorted by agent id; fewer than ``agent_count`` when the organization is large."""


@dataclass(frozen=True)
class OrganizationPage:
    """One page of organizations."""

    rows: list[OrganizationRow]
    next_cursor: str | None
    """Pass as ``cursor`` for more organizations; None when the scan is complete."""
    total: int
    """Organizations in the directory."""


def deadline_in(status: MeetingStatus) -> float | None:
    """Seconds left in ``status``'s current turn (server clock), None without a deadline."""
    if status.deadline is None:
        return None
    return (status.deadline - status.now).total_seconds()


class InteractionPages:
    """The meetings and the directory of one deployment, a page at a time.

    Args:
        messaging: the interactions over the dashboard's coordinator (never started: the
            dashboard only reads).
    """

    def __init__(self, messaging: AgentMessaging) -> None:
        self.messaging = messaging
        self._redis: RedisClient = messaging.redis

    async def _status(self, meeting_id: str) -> MeetingStatus | None:
        try:
            return await self.messaging.meeting.get_meeting_status(meeting_id)
        except MeetingNotFoundError:
            return None  # expired (or a crashed creation) since it was indexed

    async def meetings(self, *, cursor: str | None = None, count: int = 50) -> MeetingPage:
        """Up to ``count`` meetings, newest first, from ``cursor``.

        Raises:
            ConfigurationError: ``cursor`` is malformed.
        """
        index = self.messaging.keys.meetings_all
        try:
            top, skip = parse_cursor(cursor)
        except ConfigurationError:
            raise ConfigurationError(
                f"invalid meeting cursor {cursor!r}: expected <created_ms>:<skip>"
            ) from None
        raw = cast(
            "list[tuple[Any, float]]",
            await self._redis.zrevrangebyscore(
                index, top, "-inf", start=skip, num=count, withscores=True
            ),
        )
        entries = [(text(member), int(score)) for member, score in raw]
        statuses = await asyncio.gather(*(self._status(mid) for mid, _ in entries))
        rows = [MeetingRow(s, deadline_in(s)) for s in statuses if s is not None]
        next_cursor: str | None = None
        if len(entries) == count:
            last = entries[-1][1]
            # Meetings of the last score already shown: this page's and, when the page
            # started at that same score, the ones skipped to reach it.
            same = sum(1 for _, score in entries if score == last)
            if str(last) == top:
                same += skip
            next_cursor = f"{last}:{same}"
        total = int(await self._redis.zcard(index))
        return MeetingPage(rows, next_cursor, total)

    async def meeting(self, meeting_id: str) -> MeetingStatus | None:
        """The meeting's status now; None when there is no such meeting (or it expired).

        Raises:
            ConfigurationError: ``meeting_id`` is not a valid meeting id.
        """
        return await self._status(meeting_id)

    async def history(
        self, meeting_id: str, *, after: str = "-", count: int = 100
    ) -> list[MeetingEvent]:
        """Up to ``count`` of the meeting's events after the stream id ``after``.

        Raises:
            ConfigurationError: ``meeting_id`` or ``after`` is malformed.
        """
        if after != "-" and not _is_entry_id(after):
            raise ConfigurationError(f"invalid event id {after!r}: expected <ms>-<seq>")
        try:
            return await self.messaging.meeting.get_meeting_history(
                meeting_id, after=after, limit=count
            )
        except MeetingNotFoundError:
            return []

    async def organizations(self, *, cursor: str = "0", count: int = 20) -> OrganizationPage:
        """One ``SSCAN`` step of organizations (about ``count``), with their agents' inboxes.

        Raises:
            ConfigurationError: ``cursor`` is not a scan cursor (a whole number).
        """
        if not cursor.isdigit() or len(cursor) > 20:
            raise ConfigurationError(f"invalid organization cursor {cursor!r}: expected a number")
        keys = self.messaging.keys
        next_raw, members = cast(
            "tuple[Any, list[Any]]",
            await self._redis.sscan(keys.organizations, int(cursor), count=count),
        )
        org_ids = sorted({text(m) for m in members})
        rows = await asyncio.gather(*(self._organization(org) for org in org_ids))
        next_cursor = None if int(next_raw) == 0 else str(int(next_raw))
        total = int(await self._redis.scard(keys.organizations))
        return OrganizationPage(list(rows), next_cursor, total)

    async def _organization(self, org_id: str) -> OrganizationRow:
        key = self.messaging.keys.organization_agents(org_id)
        agent_count = int(await self._redis.scard(key))
        names: set[str] = set()
        scan = 0
        # A bounded walk: stop once enough agents are found, whatever the set's size.
        while len(names) < AGENTS_PER_ORGANIZATION:
            scan_raw, found = cast(
                "tuple[Any, list[Any]]",
                await self._redis.sscan(key, scan, count=AGENTS_PER_ORGANIZATION),
            )
            names.update(text(m) for m in found)
            scan = int(scan_raw)
            if scan == 0:
                break
        agents = sorted((AgentId.parse(n) for n in names), key=str)[:AGENTS_PER_ORGANIZATION]
        counts: list[Any] = []
        if agents:
            async with self._redis.pipeline(transaction=False) as pipe:
                for agent in agents:
                    pipe.zcard(self.messaging.keys.inbox(agent).unread)
                counts = await pipe.execute()
        return OrganizationRow(
            org_id,
            agent_count,
            [AgentInbox(a, int(c)) for a, c in zip(agents, counts, strict=True)],
        )


def _is_entry_id(value: str) -> bool:
    ms, dash, seq = value.partition("-")
    return bool(dash) and ms.isdigit() and seq.isdigit() and len(value) <= 41
