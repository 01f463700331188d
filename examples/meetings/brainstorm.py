"""A brainstorming meeting: a host, three idea agents and one that never speaks.

Every participant runs as its own task (as it would in its own process): it attends,
waits for its turn (a blocked stream read, no polling) and speaks. The silent agent
attends but never speaks: its turn times out on the Redis server clock after
``turn_duration`` and passes on; nobody hangs. After two rounds the meeting ends
(``max_turns``). A clock loop times turns out as well; with every participant gone
it alone would keep the meeting moving. Exits 0 when the story went as described.
"""

from __future__ import annotations

import asyncio
import sys

from _common import messaging_on_redis

from tta_agent_coordination import AgentId
from tta_agent_coordination.interactions import (
    AgentMessaging,
    MeetingClock,
    MeetingEvent,
    MeetingEventType,
)

HOST = AgentId("facilitator", "fay")
IDEAS = {
    AgentId("thinker", "ada"): ["a shared whiteboard", "timed rounds"],
    AgentId("thinker", "bo"): ["voting with emojis", "a parking lot for side topics"],
    AgentId("thinker", "cy"): ["pairs that swap ideas", "one idea per sticky note"],
}
SILENT = AgentId("thinker", "dozy")
TURN_S = 0.3


async def idea_agent(messaging: AgentMessaging, me: AgentId, mid: str) -> None:
    """Speak on each turn until the meeting ends."""
    ideas = list(IDEAS[me])
    while True:
        turn = await messaging.meeting.wait_for_turn(me, mid, timeout=30)
        if turn.ended:
            return
        idea = ideas.pop(0) if ideas else "nothing new"
        await messaging.meeting.speak(me, mid, {"idea": idea})


async def host(messaging: AgentMessaging, mid: str) -> None:
    """Open the meeting, then take the host's turns with a summary line."""
    while True:
        turn = await messaging.meeting.wait_for_turn(HOST, mid, timeout=30)
        if turn.ended:
            return
        await messaging.meeting.speak(HOST, mid, {"summary": f"round {turn.turn // 5} done"})


async def main() -> int:
    """Two rounds of five; 0 when the silent agent timed out and everyone else spoke."""
    history: list[MeetingEvent] = []
    async with messaging_on_redis() as messaging:
        await messaging.register_organization("studio")
        for agent in (HOST, *IDEAS, SILENT):
            await messaging.register_agent(agent, organization="studio")
        timeouts: list[MeetingEvent] = []

        @messaging.register_event_handler(MeetingEventType.TIMED_OUT)
        async def on_timeout(event: MeetingEvent) -> None:
            timeouts.append(event)

        mid = await messaging.meeting.create_meeting(
            HOST, [*IDEAS, SILENT], turn_duration=TURN_S, max_turns=10
        )
        for agent in (*IDEAS, SILENT):  # the round robin follows this join order
            await messaging.meeting.attend_meeting(agent, mid)
        agents = [asyncio.create_task(idea_agent(messaging, a, mid)) for a in IDEAS]
        stop = asyncio.Event()
        clock = asyncio.create_task(MeetingClock(messaging, idle_s=0.05).run(stop))
        await messaging.meeting.start_meeting(HOST, mid, {"topic": "better meetings"})
        await asyncio.wait_for(asyncio.gather(host(messaging, mid), *agents), 30)
        stop.set()
        await clock
        history = await messaging.meeting.get_meeting_history(mid)
        for event in history:
            who = str(event.agent) if event.agent else "-"
            said = f" {event.payload}" if event.payload is not None else ""
            print(f"turn {event.turn:>2} {event.type.value:<12} {who}{said}")
    spoke = [e.agent for e in history if e.type is MeetingEventType.SPOKE and e.turn > 0]
    silent_timeouts = [e for e in history if e.type is MeetingEventType.TIMED_OUT]
    ok = (
        history[-1].type is MeetingEventType.ENDED
        and {e.agent for e in silent_timeouts} == {SILENT}
        and len(silent_timeouts) == 2
        and spoke == [*IDEAS, HOST] * 2
        and len(timeouts) >= 1
    )
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
