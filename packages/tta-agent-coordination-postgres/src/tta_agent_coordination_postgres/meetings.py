"""``PostgresMeetingStore``: the durable record of meetings (migration 0005).

Implements the core's :class:`~tta_agent_coordination.interactions.MeetingStore` (and,
through :class:`PostgresInteractionStore`, the conversation record) on the tables
``meetings``, ``meeting_participants`` and ``meeting_events``::

    record = PostgresMeetingStore(store)  # a PostgresMessageStore, migrated
    messaging = AgentMessaging(coordinator, store=record)

Writes are idempotent (a meeting upserts by id, an event by meeting and event id); a
``joined``/``left`` event updates its participant, a ``turn_changed`` event the
meeting's turn and speaker (only forward: a late write never moves a turn back).
:meth:`PostgresMeetingStore.open_meetings` gives ``AgentMessaging.restore`` what it
needs to bring meetings back after a Redis loss.
"""

from __future__ import annotations

import json
from typing import Any

from tta_agent_coordination.interactions import (
    MeetingEvent,
    MeetingEventType,
    MeetingParticipant,
    MeetingStatus,
    MeetingStatusValue,
    MeetingStore,
    ParticipantState,
)
from tta_agent_coordination.models import AgentId
from tta_agent_coordination_postgres.conversations import PostgresInteractionStore

__all__ = ["PostgresMeetingStore"]

_STATE_OF = {MeetingEventType.JOINED: "attending", MeetingEventType.LEFT: "left"}


class PostgresMeetingStore(PostgresInteractionStore, MeetingStore):
    """Conversations and meetings, in the schema of ``store`` (migrated to version 5)."""

    async def record_meeting(self, status: MeetingStatus) -> None:
        """Insert or update a meeting and its participants (status only moves forward)."""
        async with self._store.transaction("record_meeting") as conn:
            await conn.execute(
                "INSERT INTO meetings (meeting_id, host, status, turn, speaker,"
                " turn_duration_ms, max_turns, end_reason, created_at, started_at, ended_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (meeting_id) DO UPDATE SET"
                " status = CASE WHEN meetings.status = 'ended' THEN 'ended'"
                "   WHEN excluded.status = 'created' THEN meetings.status"
                "   ELSE excluded.status END,"
                " turn = GREATEST(meetings.turn, excluded.turn),"
                " speaker = CASE WHEN excluded.turn >= meetings.turn THEN excluded.speaker"
                "   ELSE meetings.speaker END,"
                " end_reason = COALESCE(meetings.end_reason, excluded.end_reason),"
                " started_at = COALESCE(meetings.started_at, excluded.started_at),"
                " ended_at = COALESCE(meetings.ended_at, excluded.ended_at),"
                " updated_at = now()",
                (
                    status.meeting_id,
                    str(status.host),
                    status.status.value,
                    status.turn,
                    str(status.current_speaker) if status.current_speaker else None,
                    int(status.turn_duration * 1000),
                    status.max_turns,
                    status.end_reason,
                    status.created_at,
                    status.started_at,
                    status.ended_at,
                ),
            )
            for p in status.participants:
                await conn.execute(
                    "INSERT INTO meeting_participants (meeting_id, agent_id, state, join_order)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (meeting_id, agent_id) DO UPDATE SET"
                    " state = CASE WHEN meeting_participants.state = 'left' THEN 'left'"
                    "   WHEN excluded.state = 'invited' THEN meeting_participants.state"
                    "   ELSE excluded.state END,"
                    " join_order = COALESCE(excluded.join_order, meeting_participants.join_order)",
                    (status.meeting_id, str(p.agent), p.state.value, p.order),
                )

    async def record_meeting_event(self, event: MeetingEvent) -> None:
        """Record one event once; joins, leaves and turn changes update the meeting."""
        ms, _, seq = event.event_id.partition("-")
        agent = str(event.agent) if event.agent else None
        async with self._store.transaction("record_meeting_event") as conn:
            cur = await conn.execute(
                "INSERT INTO meeting_events (meeting_id, event_id, event_ms, event_seq, type,"
                " agent_id, turn, payload, data, at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s)"
                " ON CONFLICT (meeting_id, event_id) DO NOTHING",
                (
                    event.meeting_id,
                    event.event_id,
                    int(ms),
                    int(seq or 0),
                    event.type.value,
                    agent,
                    event.turn,
                    json.dumps(event.payload),
                    json.dumps(event.data),
                    event.at,
                ),
            )
            if cur.rowcount != 1:
                return  # recorded before
            if event.type in _STATE_OF and agent is not None:
                order = event.data.get("order") if event.type is MeetingEventType.JOINED else None
                await conn.execute(
                    "UPDATE meeting_participants SET state = %s,"
                    " join_order = COALESCE(%s, join_order)"
                    " WHERE meeting_id = %s AND agent_id = %s AND state <> 'left'",
                    (_STATE_OF[event.type], order, event.meeting_id, agent),
                )
            if event.type is MeetingEventType.TURN_CHANGED:
                await conn.execute(
                    "UPDATE meetings SET turn = %s, speaker = %s, updated_at = now()"
                    " WHERE meeting_id = %s AND turn <= %s AND status = 'active'",
                    (event.turn, agent, event.meeting_id, event.turn),
                )
            elif event.type is MeetingEventType.ENDED:
                await conn.execute(
                    "UPDATE meetings SET status = 'ended', speaker = NULL,"
                    " end_reason = COALESCE(end_reason, %s), ended_at = COALESCE(ended_at, %s),"
                    " updated_at = now() WHERE meeting_id = %s",
                    (event.data.get("reason"), event.at, event.meeting_id),
                )

    async def meeting_history(self, meeting_id: str) -> list[MeetingEvent]:
        """Every recorded event of the meeting, in order (also after Redis lost it)."""
        async with self._store.transaction("meeting_history") as conn:
            cur = await conn.execute(
                "SELECT event_id, type, agent_id, turn, payload::text, data::text, at"
                " FROM meeting_events WHERE meeting_id = %s ORDER BY event_ms, event_seq",
                (meeting_id,),
            )
            return [
                MeetingEvent(
                    event_id=r[0],
                    meeting_id=meeting_id,
                    type=MeetingEventType(r[1]),
                    agent=AgentId.parse(r[2]) if r[2] else None,
                    turn=r[3],
                    payload=json.loads(r[4]) if r[4] is not None else None,
                    data=json.loads(r[5]),
                    at=r[6],
                )
                for r in await cur.fetchall()
            ]

    async def open_meetings(self) -> list[MeetingStatus]:
        """The meetings not ended, with their participants, as last recorded."""
        async with self._store.transaction("open_meetings") as conn:
            cur = await conn.execute(
                "SELECT meeting_id, host, status, turn, speaker, turn_duration_ms, max_turns,"
                " created_at, started_at, now() FROM meetings WHERE status <> 'ended'"
                " ORDER BY created_at"
            )
            rows = await cur.fetchall()
            out: list[MeetingStatus] = []
            for r in rows:
                cur = await conn.execute(
                    "SELECT agent_id, state, join_order FROM meeting_participants"
                    " WHERE meeting_id = %s ORDER BY join_order NULLS LAST, agent_id",
                    (r[0],),
                )
                participants = tuple(
                    MeetingParticipant(
                        agent=AgentId.parse(p[0]), state=ParticipantState(p[1]), order=p[2]
                    )
                    for p in await cur.fetchall()
                )
                out.append(_status(r, participants))
            return out


def _status(r: Any, participants: tuple[MeetingParticipant, ...]) -> MeetingStatus:
    status = MeetingStatusValue(r[2])
    active = status is MeetingStatusValue.ACTIVE
    return MeetingStatus(
        meeting_id=r[0],
        host=AgentId.parse(r[1]),
        status=status,
        turn=r[3],
        current_speaker=AgentId.parse(r[4]) if r[4] and active else None,
        deadline=None,
        turn_duration=r[5] / 1000,
        max_turns=r[6],
        participants=participants,
        created_at=r[7],
        started_at=r[8],
        now=r[9],
    )
