"""A meeting participant in its own process (run as a script by test_meeting_processes.py).

Usage: python mtg_process.py REDIS_URL KEY_PREFIX MEETING_ID AGENT MODE LEDGER

MODE ``speak``: attends, then speaks on each of its turns until the meeting ends.
MODE ``hang``: attends, waits for its turn, notes it, then hangs (to be SIGKILLed).
MODE ``race``: attends, waits for its turn, speaks once and notes ``won`` or ``lost``
(several processes serving one agent race for the same turn).
Every turn is a JSON line in LEDGER. Prints "ready" once it attends.
"""

import asyncio
import json
import os
import sys
from typing import Any

from tta_agent_coordination.interactions import AgentMessaging, NotYourTurnError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import real_redis


def note(ledger: str, **entry: Any) -> None:
    with open(ledger, "a", encoding="utf-8") as f:
        f.write(json.dumps({"pid": os.getpid(), **entry}) + "\n")


async def main(url: str, prefix: str, mid: str, name: str, mode: str, ledger: str) -> None:
    client = await real_redis(url)
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    messaging = AgentMessaging(coordinator)
    agent = AgentId.parse(name)
    try:
        await messaging.meeting.attend_meeting(agent, mid)
        print("ready", flush=True)
        while True:
            turn = await messaging.meeting.wait_for_turn(agent, mid, timeout=60)
            if turn.ended:
                note(ledger, event="ended")
                return
            note(ledger, event="turn", turn=turn.turn)
            if mode == "hang":
                await asyncio.Event().wait()
            if mode == "race":
                # Speak only once every racer saw the turn (a barrier in Redis), so
                # that they all race for the same one.
                racers = int(os.environ.get("MTG_RACERS", "1"))
                if await client.incr(f"{prefix}:race:count") == racers:
                    await client.rpush(f"{prefix}:race:go", *(["go"] * racers))
                await client.blpop([f"{prefix}:race:go"], timeout=30)
                try:
                    await messaging.meeting.speak(agent, mid, {"pid": os.getpid()})
                except NotYourTurnError:
                    note(ledger, event="lost", turn=turn.turn)
                else:
                    note(ledger, event="won", turn=turn.turn)
                return
            await messaging.meeting.speak(agent, mid, {"from": name, "turn": turn.turn})
    finally:
        await coordinator.aclose()
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
