"""The demo's meeting scene: a host and three agents take turns; a silent one times out.

The game master ``game_master:gm`` hosts a short meeting about the rusty gate with three
non-player characters, invited and attending in this order: ``npc:ada``, ``npc:bo`` and
``npc:dozy``. Round robin in join order (the host last):

* turn 0 — the host opens the meeting (``start_meeting``);
* turns 1 and 2 — ada and bo each wait for their turn (a blocked stream read, no
  polling) and speak once;
* turn 3 — dozy attends but never speaks: its turn times out on the Redis *server*
  clock after ``turn_duration`` (whichever waiter notices first times it out, by a
  compare-and-set on the turn number) and passes on;
* turn 4 — the host sums up and ends the meeting.

Each participant is its own task, as it would be in its own process. The scene follows
the meeting's event stream (as any process could) and shows each event as it arrives;
at the end it deletes the meeting's keys and checks that none is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal, cast

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import CoordinationError
from tta_agent_coordination.interactions import AgentMessaging, MeetingEvent, MeetingEventType
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

__all__ = [
    "HOST",
    "LINES",
    "SILENT",
    "MeetingScene",
    "MeetingSceneError",
    "MeetingSceneResult",
    "SpokenTurn",
    "say_line",
]

HOST = AgentId("game_master", "gm")
"""The meeting's host: opens it, sums up, ends it."""
LINES: dict[AgentId, str] = {
    AgentId("npc", "ada"): "the gate rusted shut the night the bell cracked",
    AgentId("npc", "bo"): "the smith has the only key, and he owes me",
}
"""What each speaking agent says on its turn (in join order)."""
SILENT = AgentId("npc", "dozy")
"""Attends, never speaks: its turn times out."""
_ORG = "demo-tavern"
_WRAP_UP = "the smith's key then: we open the gate at dawn"

Level = Literal["info", "ok", "warn", "error"]
Emit = Callable[[str, str, Level], None]
"""``emit(agent, text, level)``: one line of the demo's story."""
Speaker = Callable[[AgentId, str], str]
"""``speaker(agent, line) -> what it says``: the agents' words (may raise)."""


def say_line(agent: AgentId, line: str) -> str:
    """The default speaker: ``agent`` says its line of :data:`LINES` as it is."""
    del agent  # every agent says its own line
    return line


class MeetingSceneError(CoordinationError):
    """The meeting scene did not end in time."""


@dataclass(frozen=True)
class SpokenTurn:
    """One turn of the meeting, as its history recorded it."""

    turn: int
    agent: str
    outcome: Literal["spoke", "timed out"]
    said: str


@dataclass
class MeetingSceneResult:
    """What the meeting scene did."""

    meeting_id: str | None = None
    status: str = "not run"
    end_reason: str | None = None
    turns: list[SpokenTurn] = field(default_factory=list[SpokenTurn])
    """Every turn (after the host's opening), in order."""
    events: list[str] = field(default_factory=list[str])
    """The type of each event the scene followed, in order."""
    errors: list[str] = field(default_factory=list[str])
    """``agent: error`` of each participant task that raised."""
    keys_left: int = -1
    """The meeting's keys (and index entries) still in Redis after its cleanup."""

    @property
    def timeouts(self) -> list[str]:
        """Who stayed silent past a deadline, once per timed-out turn."""
        return [t.agent for t in self.turns if t.outcome == "timed out"]

    @property
    def spoken(self) -> list[str]:
        """Who spoke, one entry per spoken turn, in turn order."""
        return [t.agent for t in self.turns if t.outcome == "spoke"]


class MeetingScene:
    """The meeting scene under the demo's key prefix (see the module docstring).

    Args:
        client: the demo's Redis (or FakeRedis) client; not closed here.
        key_prefix: the demo's prefix (its caller deletes every key under it).
        emit: where the scene's story goes.
        turn_duration: each turn's time on the server clock (the silent agent's wait).
        wait_s: the longest the scene waits for the meeting to end
            (then :class:`MeetingSceneError`).
        speaker: what each speaking agent says (by default :func:`say_line`);
            if it raises, that agent's task fails and its turn times out too.
    """

    def __init__(
        self,
        client: RedisClient,
        key_prefix: str,
        emit: Emit,
        *,
        turn_duration: float = 1.0,
        wait_s: float = 20.0,
        speaker: Speaker | None = None,
    ) -> None:
        self._emit = emit
        self._turn_s = turn_duration
        self._wait_s = wait_s
        self._speaker: Speaker = speaker if speaker is not None else say_line
        self.coordinator = RedisMessageCoordinator(client, key_prefix=key_prefix)
        """The scene's coordinator (same prefix as the demo's)."""
        self.messaging = AgentMessaging(self.coordinator)
        """The participants' messaging (one per process in real life; one here)."""
        self.result = MeetingSceneResult()
        self._stopped = False

    @property
    def participants(self) -> list[AgentId]:
        """The invited agents, in join order."""
        return [*LINES, SILENT]

    async def run(self) -> MeetingSceneResult:
        """Hold the meeting to its end while showing its events, then clean its keys up.

        Raises:
            MeetingSceneError: the meeting did not end within ``wait_s``.
            CoordinationError: the back-end failed (or refused a meeting call).
        """
        meeting = self.messaging.meeting
        try:
            await self.messaging.register_organization(_ORG)
            for agent in (HOST, *self.participants):
                await self.messaging.register_agent(agent, organization=_ORG)
            mid = await meeting.create_meeting(HOST, self.participants, turn_duration=self._turn_s)
            self.result.meeting_id = mid
            for agent in self.participants:  # the round robin follows this join order
                await meeting.attend_meeting(agent, mid)
            self._emit(
                "demo",
                f"meeting {mid}: host gm, npc ada, bo and dozy (silent), {self._turn_s:g}s turns",
                "info",
            )
            follow = asyncio.create_task(self._follow(meeting.events(mid)))
            tasks = {
                str(agent): asyncio.create_task(self._speak_once(agent, line, mid))
                for agent, line in LINES.items()
            }
            tasks[str(HOST)] = asyncio.create_task(self._host(mid))
            await meeting.start_meeting(HOST, mid, {"says": "who locked the rusty gate?"})
            try:
                async with asyncio.timeout(self._wait_s):
                    outcomes = await asyncio.gather(*tasks.values(), return_exceptions=True)
                    await follow
            except TimeoutError:
                raise MeetingSceneError(
                    f"the meeting did not end within {self._wait_s:g}s"
                ) from None
            finally:
                for task in (*tasks.values(), follow):
                    task.cancel()
            for name, outcome in zip(tasks, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    self.result.errors.append(f"{name}: {type(outcome).__name__}: {outcome}")
            await self._collect(mid)
        finally:
            await self.stop()
        return self.result

    async def _speak_once(self, agent: AgentId, line: str, mid: str) -> None:
        turn = await self.messaging.meeting.wait_for_turn(agent, mid, timeout=self._wait_s)
        if turn.ended:
            return
        await self.messaging.meeting.speak(agent, mid, {"says": self._speaker(agent, line)})

    async def _host(self, mid: str) -> None:
        turn = await self.messaging.meeting.wait_for_turn(HOST, mid, timeout=self._wait_s)
        if turn.ended:
            return
        await self.messaging.meeting.speak(HOST, mid, {"says": _WRAP_UP})
        await self.messaging.meeting.end_meeting(HOST, mid)

    async def _follow(self, events: AsyncIterator[MeetingEvent]) -> None:
        async for event in events:
            self.result.events.append(event.type.value)
            self._show(event)

    def _show(self, event: MeetingEvent) -> None:
        who = _who(event.agent) if event.agent is not None else "-"
        level: Level = "info"
        match event.type:
            case MeetingEventType.SPOKE:
                text = f"turn {event.turn}: {who} says {_said(event.payload)!r}"
            case MeetingEventType.TURN_CHANGED:
                text = f"turn {event.turn} → {who}"
            case MeetingEventType.TIMED_OUT:
                text, level = f"turn {event.turn}: {who} stayed silent, timed out", "warn"
            case MeetingEventType.ENDED:
                text, level = f"meeting ended ({event.data.get('reason', '?')})", "ok"
            case MeetingEventType.LATE | MeetingEventType.LEFT:
                text, level = f"turn {event.turn}: {who} {event.type.value}", "warn"
            case kind:
                text = f"{who} {kind.value}"
        self._emit("meeting (events)", text, level)

    async def _collect(self, mid: str) -> None:
        meeting = self.messaging.meeting
        status = await meeting.get_meeting_status(mid)
        self.result.status = status.status.value
        self.result.end_reason = status.end_reason
        for event in await meeting.get_meeting_history(mid):
            if event.turn == 0 or event.agent is None:
                continue  # the host's opening, and events of no one
            if event.type is MeetingEventType.SPOKE:
                self.result.turns.append(
                    SpokenTurn(event.turn, _who(event.agent), "spoke", _said(event.payload))
                )
            elif event.type is MeetingEventType.TIMED_OUT:
                self.result.turns.append(SpokenTurn(event.turn, _who(event.agent), "timed out", ""))
        self.result.keys_left = await self._clean_up(mid)

    async def _clean_up(self, mid: str) -> int:
        """Delete the meeting's keys and index entries; how many are still there after."""
        keys = self.messaging.keys
        redis = self.messaging.redis
        await redis.delete(*keys.meeting(mid).all())
        await redis.zrem(keys.meetings_due, mid)
        await redis.zrem(keys.meetings_all, mid)
        # A scan of the meeting's hash tag, not a list of known keys: a key the meeting
        # wrote that the cleanup does not know about still shows.
        pattern = f"{keys.prefix}:{{_mtg:{mid}}}*"
        found = cast("AsyncIterator[object]", redis.scan_iter(match=pattern, count=500))
        left = 0
        async for _ in found:
            left += 1
        for index in (keys.meetings_due, keys.meetings_all):
            if await redis.zscore(index, mid) is not None:
                left += 1
        return left

    async def stop(self) -> None:
        """Close the scene's messaging and coordinator (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        await self.messaging.aclose()
        await self.coordinator.aclose()

    def checks(self) -> list[tuple[str, object, object, bool]]:
        """``(name, expected, actual, ok)`` of each expectation of the scene."""
        r = self.result
        status = r.status if r.status != "ended" else f"ended ({r.end_reason})"
        expected_spoken = [*(_who(a) for a in LINES), _who(HOST)]
        return [
            ("meeting ended by its host", "ended (host)", status, status == "ended (host)"),
            (
                "meeting turns timed out",
                f"1 ({_who(SILENT)})",
                f"{len(r.timeouts)} ({', '.join(r.timeouts) or '-'})",
                r.timeouts == [_who(SILENT)],
            ),
            (
                "meeting turns spoken once each, in join order",
                " → ".join(expected_spoken),
                " → ".join(r.spoken) or "-",
                r.spoken == expected_spoken,
            ),
            (
                "meeting participants raised nothing",
                "none",
                "; ".join(r.errors) or "none",
                not r.errors,
            ),
            ("meeting keys left after cleanup", 0, r.keys_left, r.keys_left == 0),
        ]


def _said(payload: object) -> str:
    """The ``says`` of a spoken payload (``?`` when it has none)."""
    if isinstance(payload, dict):
        return str(cast("dict[str, object]", payload).get("says", "?"))
    return "?"


def _who(agent: AgentId) -> str:
    """An agent's short name in the story: its instance (``ada``), else its type."""
    return agent.instance or agent.type
