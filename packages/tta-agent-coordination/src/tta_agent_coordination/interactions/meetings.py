"""Meetings: turn-taking among many agents, with turn timeouts kept by the server.

Each meeting lives under its own hash tag ``{_mtg:<id>}`` (``keys.py``); every
transition (create, attend, start, speak, time out, leave, end) is one Lua script that
first times out an expired turn (a compare-and-set on the server clock: whoever notices
first advances it, once), then appends its events to the meeting's stream. That stream
is the history, the feed of ``events()`` and the wake-up of ``wait_for_turn`` (through
the coordinator's ``StreamWaiter``: no polling). See docs/meetings.md.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.interactions.codec import jsonable_payload, ms_to_datetime
from tta_agent_coordination.interactions.errors import (
    MeetingNotFoundError,
    MeetingStateError,
    MeetingWaitTimeoutError,
    NotInvitedError,
    NotMeetingHostError,
    NotYourTurnError,
    TurnExpiredError,
)
from tta_agent_coordination.interactions.keys import check_meeting_id
from tta_agent_coordination.interactions.lua import as_str, guarded
from tta_agent_coordination.interactions.meeting_codec import (
    ScriptReply,
    decode_event,
    decode_status,
    pairs_dict,
    restore_body,
)
from tta_agent_coordination.interactions.meeting_models import (
    MeetingEvent,
    MeetingEventType,
    MeetingStatus,
    MeetingStatusValue,
    ParticipantState,
    Turn,
)
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.observability.logging import get_logger

if TYPE_CHECKING:
    from tta_agent_coordination.interactions.messaging import AgentMessaging

__all__ = ["MeetingEventHandler", "Meetings"]

MeetingEventHandler = Callable[[MeetingEvent], Awaitable[None]]
"""An event handler: ``async def on_event(event: MeetingEvent) -> None``."""

_HISTORY_PAGE = 500

_FOLLOW_RECHECK_S = 30.0
"""How long ``events()`` waits in silence before it checks that the meeting still exists."""


class Meetings:
    """Turn-based meetings (``messaging.meeting``)."""

    def __init__(self, messaging: AgentMessaging, *, events_cap: int = 10_000) -> None:
        self._m = messaging
        self._events_cap = events_cap
        self._handlers: dict[MeetingEventType, list[MeetingEventHandler]] = {}
        self._log = get_logger(__name__, prefix=messaging.coordinator.keys.prefix)

    # --- handlers -----------------------------------------------------------------------

    def add_event_handler(self, event_type: MeetingEventType, fn: MeetingEventHandler) -> None:
        """Call ``fn`` for every event of ``event_type`` that this process's calls add.

        That is every event a method of this process (or its meeting clock, or its
        ``wait_for_turn`` noticing a timeout) wrote; to follow a meeting written by
        other processes, iterate :meth:`events`.
        """
        self._handlers.setdefault(MeetingEventType(event_type), []).append(fn)

    async def _dispatch(self, events: Sequence[MeetingEvent]) -> None:
        for event in events:
            await self._m.record_meeting_event(event)
            for fn in self._handlers.get(event.type, ()):
                try:
                    await fn(event)
                except Exception as exc:  # a handler's failure must not fail the meeting
                    self._log.warning(
                        "meeting_event_handler_failed",
                        meeting_id=event.meeting_id,
                        event_type=event.type.value,
                        error=str(exc),
                    )

    # --- scripts ------------------------------------------------------------------------

    async def _run(self, script: str, meeting_id: str, args: Sequence[Any]) -> ScriptReply:
        keys = self._m.keys.meeting(meeting_id).all()
        raw = await self._m.scripts.run(
            script, keys, [self._events_cap, self._m.retention_ms, *args]
        )
        reply = ScriptReply(meeting_id, raw)
        await self._index(meeting_id, reply)
        await self._dispatch(reply.events)
        return reply

    async def _index(self, meeting_id: str, reply: ScriptReply) -> None:
        # The clock's index is a hint at or before the real deadline (deadlines only
        # grow, so a stale entry is early, never late); an ended meeting leaves it.
        due = self._m.keys.meetings_due
        if reply.status == MeetingStatusValue.ACTIVE:
            await guarded(
                "meeting_index", lambda: self._m.redis.zadd(due, {meeting_id: reply.deadline_ms})
            )
        elif reply.status == MeetingStatusValue.ENDED:
            await guarded("meeting_index", lambda: self._m.redis.zrem(due, meeting_id))

    @staticmethod
    def _raise(meeting_id: str, agent: AgentId, reply: ScriptReply, action: str) -> None:
        code = reply.code
        if code == "not_found":
            raise MeetingNotFoundError(meeting_id)
        if code == "not_host":
            raise NotMeetingHostError(meeting_id, str(agent))
        if code == "not_invited":
            raise NotInvitedError(meeting_id, str(agent))
        if code == "late":
            raise TurnExpiredError(meeting_id, str(agent), reply.events[0].turn)
        if code == "not_your_turn":
            raise NotYourTurnError(meeting_id, str(agent), reply.speaker, reply.turn)
        if code == "bad_next":
            raise MeetingStateError(meeting_id, f"{action}: the next speaker is not attending")
        if code == "host":
            raise MeetingStateError(meeting_id, "the host cannot leave; end the meeting")
        if code in ("state", "ended", "left", "exists"):
            raise MeetingStateError(
                meeting_id, f"cannot {action}: {code if code != 'state' else reply.status}"
            )

    # --- the API ------------------------------------------------------------------------

    async def create_meeting(
        self,
        host: AgentId,
        participants: Sequence[AgentId],
        *,
        turn_duration: float = 60.0,
        max_turns: int | None = None,
        meeting_id: str | None = None,
    ) -> str:
        """Create a meeting; the host attends, the participants are invited.

        Returns:
            The meeting id (``mtg-<hex>`` unless given).

        Raises:
            AgentNotFoundError, CrossOrganizationError: the host may not address a
                participant (directory rules).
            ConfigurationError: no participant, ``turn_duration`` not positive,
                ``max_turns`` below 1, or a bad ``meeting_id``.
            MeetingStateError: a meeting with ``meeting_id`` exists.
        """
        if not participants:
            raise ConfigurationError("a meeting needs at least one participant")
        if not turn_duration > 0:
            raise ConfigurationError(f"turn_duration must be > 0 seconds, got {turn_duration}")
        if max_turns is not None and max_turns < 1:
            raise ConfigurationError(f"max_turns must be >= 1, got {max_turns}")
        mid = check_meeting_id(meeting_id or f"mtg-{uuid.uuid4().hex}")
        await self._m.directory.check_route(host, list(participants))
        invited = list(dict.fromkeys(str(p) for p in participants))
        keys = self._m.keys
        # Listed before it exists: a crash between the two leaves a listed id without a
        # meeting (listing skips it), never a meeting nobody lists.
        await guarded(
            "meeting_index",
            lambda: self._m.redis.zadd(keys.meetings_all, {mid: 0}, nx=True),
        )
        reply = await self._run(
            "mtg_create",
            mid,
            [str(host), int(turn_duration * 1000), max_turns or 0, json.dumps(invited)],
        )
        self._raise(mid, host, reply, "create")
        await guarded(
            "meeting_index",
            lambda: self._m.redis.zadd(keys.meetings_all, {mid: reply.now_ms}),
        )
        # The listing forgets meetings created longer ago than their keys are kept
        # (their keys expired, unless still in use; listing skips those that are gone),
        # and ids a crashed creation left at 0 (another creation in flight re-adds its
        # own right after its script).
        await guarded(
            "meeting_index",
            lambda: self._m.redis.zremrangebyscore(
                keys.meetings_all, "-inf", reply.now_ms - self._m.retention_ms
            ),
        )
        await self._m.record_meeting(await self.get_meeting_status(mid))
        return mid

    async def attend_meeting(self, agent: AgentId, meeting_id: str) -> None:
        """``agent`` attends (joins the round robin at its end); again is a no-op.

        Raises:
            MeetingNotFoundError: no such meeting.
            NotInvitedError: ``agent`` was not invited.
            MeetingStateError: the meeting ended, or ``agent`` left it.
        """
        reply = await self._run("mtg_attend", check_meeting_id(meeting_id), [str(agent)])
        self._raise(meeting_id, agent, reply, "attend")

    async def start_meeting(
        self,
        host: AgentId,
        meeting_id: str,
        initial_message: Any,
        next_speaker: AgentId | None = None,
    ) -> Turn:
        """The host opens with ``initial_message`` (turn 0); turn 1 begins.

        Returns:
            Turn 1: ``next_speaker``, or the next attending agent after the host.

        Raises:
            MeetingNotFoundError, NotMeetingHostError: no such meeting; not its host.
            MeetingStateError: already started or ended; ``next_speaker`` not attending.
            PayloadError: the message is not JSON.
        """
        body = json.dumps(jsonable_payload(initial_message, self._m.max_payload_bytes))
        nxt = str(next_speaker) if next_speaker else ""
        mid = check_meeting_id(meeting_id)
        # Filed for the clock before it starts (score 0: look at it now), so a crash
        # between the start and its index update cannot hide an active meeting.
        due = self._m.keys.meetings_due
        await guarded("meeting_index", lambda: self._m.redis.zadd(due, {mid: 0}, nx=True))
        reply = await self._run("mtg_start", mid, [str(host), body, nxt])
        self._raise(meeting_id, host, reply, "start")
        await self._m.record_meeting(await self.get_meeting_status(meeting_id))
        return reply.turn_of(meeting_id)

    async def speak(
        self,
        agent: AgentId,
        meeting_id: str,
        message: Any,
        next_speaker: AgentId | None = None,
    ) -> Turn:
        """The current speaker speaks; the turn passes to ``next_speaker`` or round robin.

        Returns:
            The next turn (``ended=True`` when ``max_turns`` was reached).

        Raises:
            MeetingNotFoundError, NotInvitedError: no such meeting; not a participant.
            NotYourTurnError: another agent holds the turn.
            TurnExpiredError: ``agent``'s turn timed out first (the message is recorded
                as a ``LATE`` event and refused).
            MeetingStateError: not started, ended, or ``next_speaker`` not attending.
            PayloadError: the message is not JSON.
        """
        body = json.dumps(jsonable_payload(message, self._m.max_payload_bytes))
        nxt = str(next_speaker) if next_speaker else ""
        reply = await self._run("mtg_speak", check_meeting_id(meeting_id), [str(agent), body, nxt])
        self._raise(meeting_id, agent, reply, "speak")
        return reply.turn_of(meeting_id)

    async def check_timeout(self, meeting_id: str, turn: int | None = None) -> bool:
        """Time the current turn out if its deadline passed (server clock).

        A compare-and-set on the turn number: with ``turn`` given, only that turn is
        timed out; a duplicate (the turn already moved on) is a no-op.

        Returns:
            True when this call timed the turn out.

        Raises:
            MeetingNotFoundError: no such meeting.
        """
        arg = "" if turn is None else str(turn)
        reply = await self._run("mtg_tick", check_meeting_id(meeting_id), [arg])
        if reply.code == "not_found" or reply.status == MeetingStatusValue.CREATED:
            # Gone, or not started (its start failed): nothing to time out. A start
            # files it again.
            await guarded(
                "meeting_index", lambda: self._m.redis.zrem(self._m.keys.meetings_due, meeting_id)
            )
        if reply.code == "not_found":
            raise MeetingNotFoundError(meeting_id)
        return reply.code == "timed_out"

    async def wait_for_turn(
        self,
        agent: AgentId,
        meeting_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - the wait's deadline is its API
    ) -> Turn:
        """Wait until it is ``agent``'s turn, or the meeting ended (``turn.ended``).

        Blocks on the meeting's event stream (shared per process, no polling), and
        wakes at the current turn's deadline to time it out if nobody did.

        Raises:
            MeetingNotFoundError, NotInvitedError: no such meeting; not a participant.
            MeetingStateError: ``agent`` left the meeting.
            MeetingWaitTimeoutError: ``timeout`` passed first.
        """
        if timeout is not None and timeout < 0:
            raise ConfigurationError(f"timeout must be >= 0 seconds, got {timeout}")
        mid = check_meeting_id(meeting_id)
        keys = self._m.keys.meeting(mid)
        loop = asyncio.get_running_loop()
        limit = None if timeout is None else loop.time() + timeout
        me = str(agent)
        while True:
            # The turn and the id of the last event, read in one step: waiting for
            # events after that id misses nothing that changed the turn.
            raw = [as_str(x) for x in await self._m.scripts.run("mtg_turn", keys.all(), [me])]
            if not raw:
                raise MeetingNotFoundError(mid)
            now_ms, status, turn, speaker, deadline_ms, member, last = raw
            if not member:
                raise NotInvitedError(mid, me)
            if member == ParticipantState.LEFT:
                raise MeetingStateError(mid, f"{me} left the meeting")
            if status == MeetingStatusValue.ENDED:
                return Turn(meeting_id=mid, turn=int(turn), speaker=None, deadline=None, ended=True)
            wait = 3600.0
            if status == MeetingStatusValue.ACTIVE:
                left_ms = int(deadline_ms) - int(now_ms)
                if left_ms <= 0:
                    # This waiter noticed the expired turn: time it out (once, whoever
                    # is first) and look again.
                    await self.check_timeout(mid, int(turn))
                    continue
                if speaker == me:
                    return Turn(
                        meeting_id=mid,
                        turn=int(turn),
                        speaker=agent,
                        deadline=ms_to_datetime(int(deadline_ms)),
                    )
                # Wake just after the deadline (server clock) to time the turn out.
                wait = left_ms / 1000 + 0.01
            if limit is not None:
                remaining = limit - loop.time()
                if remaining <= 0:
                    raise MeetingWaitTimeoutError(mid, me, timeout or 0.0)
                wait = min(wait, remaining)
            await self._m.coordinator.stream_waiter.wait({keys.events: last}, wait)

    async def leave_meeting(self, agent: AgentId, meeting_id: str) -> None:
        """``agent`` leaves; if it holds the turn, the turn passes on.

        Raises:
            MeetingNotFoundError, NotInvitedError: no such meeting; not a participant.
            MeetingStateError: ``agent`` is the host, already left, or the meeting ended.
        """
        reply = await self._run("mtg_leave", check_meeting_id(meeting_id), [str(agent)])
        self._raise(meeting_id, agent, reply, "leave")

    async def end_meeting(self, host: AgentId, meeting_id: str) -> None:
        """The host ends the meeting (also mid-turn): waiters return ``ended``.

        Raises:
            MeetingNotFoundError, NotMeetingHostError: no such meeting; not its host.
            MeetingStateError: it already ended.
        """
        reply = await self._run("mtg_end", check_meeting_id(meeting_id), [str(host)])
        self._raise(meeting_id, host, reply, "end")
        await self._m.record_meeting(await self.get_meeting_status(meeting_id))

    async def get_meeting_status(self, meeting_id: str) -> MeetingStatus:
        """The meeting's state, participants and the server clock, read in one step.

        Raises:
            MeetingNotFoundError: no such meeting.
        """
        keys = self._m.keys.meeting(check_meeting_id(meeting_id))
        raw = await self._m.scripts.run("mtg_status", [keys.state, keys.members, keys.order], [])
        status = decode_status(meeting_id, raw)
        if status is None:
            raise MeetingNotFoundError(meeting_id)
        return status

    async def get_meeting_history(
        self, meeting_id: str, *, after: str = "-", limit: int | None = None
    ) -> list[MeetingEvent]:
        """Every event of the meeting (messages and system events), in order.

        Redis keeps the last ``events_cap`` (about); the store keeps them all.

        Raises:
            MeetingNotFoundError: no such meeting.
        """
        key = self._m.keys.meeting(check_meeting_id(meeting_id)).events
        start = after if after == "-" else f"({after}"
        out: list[MeetingEvent] = []
        while limit is None or len(out) < limit:
            page = _HISTORY_PAGE if limit is None else min(_HISTORY_PAGE, limit - len(out))
            raw = await guarded(
                "meeting_history",
                lambda s=start, n=page: self._m.redis.xrange(key, min=s, max="+", count=n),
            )
            entries = cast(list[Any], raw)
            for entry_id, fields in entries:
                body = pairs_dict(fields)["e"]
                out.append(decode_event(meeting_id, as_str(entry_id), body))
            if len(entries) < page:
                break
            start = f"({out[-1].event_id}"
        if not out and after == "-":
            await self.get_meeting_status(meeting_id)  # MeetingNotFoundError
        return out

    async def events(self, meeting_id: str, *, after: str = "0-0") -> AsyncIterator[MeetingEvent]:
        """The meeting's events after ``after`` (a stream id), as they happen.

        Readable from any process; ends after the ``ENDED`` event. Blocks on the
        meeting's stream through the coordinator's ``StreamWaiter`` (no polling).

        Raises:
            MeetingNotFoundError: no such meeting (also when it expires while followed).
        """
        mid = check_meeting_id(meeting_id)
        key = self._m.keys.meeting(mid).events
        last = after
        await self.get_meeting_status(mid)
        while True:
            batch = await self.get_meeting_history(mid, after=last if last != "0-0" else "-")
            for event in batch:
                last = event.event_id
                yield event
                if event.type is MeetingEventType.ENDED:
                    return
            if not batch and not await self._m.coordinator.stream_waiter.wait(
                {key: last}, _FOLLOW_RECHECK_S
            ):
                await self.get_meeting_status(mid)  # gone (expired)? MeetingNotFoundError

    async def restore(self, meetings: Sequence[MeetingStatus]) -> int:
        """Recreate these meetings (as recorded) where Redis lost them; how many came back.

        A meeting Redis still holds is left as it is. An active one's current turn gets
        a full turn duration from now (the server clock), and a ``TURN_CHANGED`` event
        with reason ``restored`` wakes its waiters.
        """
        restored = 0
        for status in meetings:
            mid = check_meeting_id(status.meeting_id)
            reply = await self._run("mtg_restore", mid, [restore_body(status)])
            if reply.code == "ok":
                restored += 1
                await guarded(
                    "meeting_index",
                    lambda m=mid, at=reply.now_ms: self._m.redis.zadd(
                        self._m.keys.meetings_all, {m: at}
                    ),
                )
        return restored

    async def list_meetings(self, limit: int = 100) -> list[str]:
        """The ids of the meetings Redis knows, newest first."""
        raw = await guarded(
            "meeting_list",
            lambda: self._m.redis.zrevrange(self._m.keys.meetings_all, 0, limit - 1),
        )
        return [as_str(x) for x in cast(list[Any], raw)]
