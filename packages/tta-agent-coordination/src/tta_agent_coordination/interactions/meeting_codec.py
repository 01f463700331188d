"""Decoding what the meeting scripts return: events, transition replies, status."""

from __future__ import annotations

import json
from typing import Any, cast

from tta_agent_coordination.interactions.codec import ms_to_datetime
from tta_agent_coordination.interactions.lua import as_str
from tta_agent_coordination.interactions.meeting_models import (
    MeetingEvent,
    MeetingEventType,
    MeetingParticipant,
    MeetingStatus,
    MeetingStatusValue,
    ParticipantState,
    Turn,
)
from tta_agent_coordination.models import AgentId

__all__ = [
    "ScriptReply",
    "decode_event",
    "decode_status",
    "pairs",
    "pairs_dict",
    "restore_body",
]


def decode_event(meeting_id: str, event_id: str, body: str) -> MeetingEvent:
    """A meeting event from its stream id and JSON (as the scripts write it)."""
    raw = cast(dict[str, Any], json.loads(body))
    payload_text = raw.pop("payload", None)
    agent = str(raw.pop("agent", "") or "")
    data = {k: v for k, v in raw.items() if k not in ("type", "turn", "at_ms")}
    participants = data.get("participants")
    if isinstance(participants, dict):  # cjson writes an empty list as {}
        data["participants"] = []
    return MeetingEvent(
        event_id=event_id,
        meeting_id=meeting_id,
        type=MeetingEventType(raw["type"]),
        agent=AgentId.parse(agent) if agent else None,
        turn=int(raw.get("turn", 0)),
        payload=json.loads(payload_text) if isinstance(payload_text, str) else None,
        at=ms_to_datetime(int(raw["at_ms"])),
        data=data,
    )


class ScriptReply:
    """A transition script's reply: its code, the state after it, the events it added."""

    def __init__(self, meeting_id: str, raw: Any) -> None:
        items = [as_str(x) for x in raw]
        self.code = items[0]
        self.status = items[1]
        self.turn = int(items[2] or 0)
        self.speaker = items[3]
        self.deadline_ms = int(items[4] or 0)
        self.now_ms = int(items[5])
        self.events = [
            decode_event(meeting_id, items[i], items[i + 1]) for i in range(6, len(items), 2)
        ]

    def turn_of(self, meeting_id: str) -> Turn:
        """The turn the script left the meeting in."""
        ended = self.status == MeetingStatusValue.ENDED
        return Turn(
            meeting_id=meeting_id,
            turn=self.turn,
            speaker=None if ended or not self.speaker else AgentId.parse(self.speaker),
            deadline=None if ended else ms_to_datetime(self.deadline_ms),
            ended=ended,
        )


def decode_status(meeting_id: str, raw: Any) -> MeetingStatus | None:
    """The reply of ``mtg_status`` as a status; None when the meeting does not exist."""
    now_ms = int(as_str(raw[0]))
    state = pairs(raw[1])
    if not state:
        return None
    members = pairs(raw[2])
    order = {k: int(float(v)) for k, v in pairs(raw[3]).items()}
    participants = sorted(
        (
            MeetingParticipant(
                agent=AgentId.parse(agent), state=ParticipantState(value), order=order.get(agent)
            )
            for agent, value in members.items()
        ),
        key=lambda p: (p.order is None, p.order or 0, str(p.agent)),
    )
    status = MeetingStatusValue(state["status"])
    active = status is MeetingStatusValue.ACTIVE

    def when(field: str) -> Any:
        value = int(state.get(field, "0") or 0)
        return ms_to_datetime(value) if value else None

    max_turns = int(state.get("max_turns", "0"))
    return MeetingStatus(
        meeting_id=meeting_id,
        host=AgentId.parse(state["host"]),
        status=status,
        turn=int(state.get("turn", "0")),
        current_speaker=AgentId.parse(state["speaker"]) if active else None,
        deadline=when("deadline") if active else None,
        turn_duration=int(state["turn_ms"]) / 1000,
        max_turns=max_turns or None,
        participants=tuple(participants),
        created_at=ms_to_datetime(int(state["created"])),
        started_at=when("started"),
        ended_at=when("ended"),
        end_reason=state.get("end_reason"),
        now=ms_to_datetime(now_ms),
    )


def pairs(raw: Any) -> dict[str, str]:
    """A flat ``[k1, v1, k2, v2, ...]`` reply as a dict of strings."""
    items = [as_str(x) for x in cast(list[Any], raw or [])]
    return dict(zip(items[::2], items[1::2], strict=True))


def pairs_dict(raw: Any) -> dict[str, str]:
    """A hash reply (a dict, or a flat list) as a dict of strings."""
    if isinstance(raw, dict):
        return {as_str(k): as_str(v) for k, v in cast(dict[Any, Any], raw).items()}
    return pairs(raw)


def restore_body(status: MeetingStatus) -> str:
    """The JSON ``mtg_restore`` takes for a meeting recorded as ``status``."""
    return json.dumps(
        {
            "host": str(status.host),
            "status": status.status.value,
            "turn": status.turn,
            "speaker": str(status.current_speaker or ""),
            "turn_ms": int(status.turn_duration * 1000),
            "max_turns": status.max_turns or 0,
            "created": int(status.created_at.timestamp() * 1000),
            "started": int(status.started_at.timestamp() * 1000) if status.started_at else 0,
            "members": [
                [str(p.agent), p.state.value, -1 if p.order is None else p.order]
                for p in status.participants
            ],
        }
    )
