"""The values of meetings: events, turns, status and participants."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from tta_agent_coordination.models import AgentId

__all__ = [
    "MeetingEvent",
    "MeetingEventType",
    "MeetingParticipant",
    "MeetingStatus",
    "MeetingStatusValue",
    "ParticipantState",
    "Turn",
]


class MeetingEventType(StrEnum):
    """What happened in a meeting (one entry of its ordered event stream)."""

    CREATED = "created"
    """The host created the meeting (``data["participants"]``: the invited agents)."""
    JOINED = "joined"
    """An invited agent attends."""
    STARTED = "started"
    """The host started the meeting."""
    SPOKE = "spoke"
    """The speaker of ``turn`` spoke (``payload``; ``data["next_speaker"]`` if named)."""
    TURN_CHANGED = "turn_changed"
    """A new turn began: ``agent`` speaks until ``data["deadline_ms"]`` (server clock)."""
    TIMED_OUT = "timed_out"
    """The speaker of ``turn`` stayed silent past its deadline; the turn passed on."""
    LATE = "late"
    """A message that came after its turn timed out: recorded, refused."""
    LEFT = "left"
    """An agent left (a leaving speaker passes the turn on)."""
    ENDED = "ended"
    """The meeting ended (``data["reason"]``: ``host`` or ``max_turns``)."""


class MeetingStatusValue(StrEnum):
    """The life of a meeting: created → active → ended."""

    CREATED = "created"
    ACTIVE = "active"
    ENDED = "ended"


class ParticipantState(StrEnum):
    """Where a participant stands: invited → attending → left."""

    INVITED = "invited"
    ATTENDING = "attending"
    LEFT = "left"


class MeetingEvent(BaseModel):
    """One event of a meeting.

    Attributes:
        event_id: its id in the meeting's stream (``"<ms>-<seq>"``; orders events).
        meeting_id: the meeting.
        type: what happened.
        agent: who it concerns (None for an automatic end).
        turn: the turn number it belongs to.
        payload: the message (``SPOKE``, ``LATE``), any JSON value.
        at: when it happened (Redis server clock).
        data: the rest (``deadline_ms``, ``reason``, ``next_speaker``, ``participants``).
    """

    model_config = ConfigDict(frozen=True)

    event_id: str
    meeting_id: str
    type: MeetingEventType
    agent: AgentId | None = None
    turn: int = 0
    payload: Any = None
    at: datetime
    data: dict[str, Any] = {}


class Turn(BaseModel):
    """A turn: its number, its speaker, and when it times out.

    Attributes:
        meeting_id: the meeting.
        turn: the turn number (1 is the first after the host's opening message).
        speaker: who speaks now (None when the meeting ended).
        deadline: when the turn times out (Redis server clock); None when ended.
        ended: the meeting ended (no more turns).
    """

    model_config = ConfigDict(frozen=True)

    meeting_id: str
    turn: int
    speaker: AgentId | None
    deadline: datetime | None
    ended: bool = False


class MeetingParticipant(BaseModel):
    """A participant and its state.

    Attributes:
        agent: the agent.
        state: invited, attending or left.
        order: its place in the round robin (join order; None unless attending).
    """

    model_config = ConfigDict(frozen=True)

    agent: AgentId
    state: ParticipantState
    order: int | None = None


class MeetingStatus(BaseModel):
    """A meeting as ``get_meeting_status`` reads it (one consistent read).

    Attributes:
        meeting_id: the meeting.
        host: its host.
        status: created, active or ended.
        turn: the current turn number.
        current_speaker: who speaks now (None unless active).
        deadline: when the current turn times out (server clock), None unless active.
        turn_duration: seconds per turn.
        max_turns: the meeting ends after this many turns (None: no limit).
        participants: every participant (the host first, then by join order).
        created_at: creation time; started_at / ended_at: when it started / ended.
        end_reason: ``host`` or ``max_turns`` once ended.
        now: the Redis server clock at the read (compare with ``deadline``).
    """

    model_config = ConfigDict(frozen=True)

    meeting_id: str
    host: AgentId
    status: MeetingStatusValue
    turn: int
    current_speaker: AgentId | None
    deadline: datetime | None
    turn_duration: float
    max_turns: int | None
    participants: tuple[MeetingParticipant, ...]
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    now: datetime
