"""A meeting participant in its own process (run as a script by test_meeting_processes.py).

Usage: python mtg_process.py REDIS_URL KEY_PREFIX MEETING_ID AGENT MODE LEDGER

MODE ``speak``: attends, then speaks on each of its turns until the meeting ends.
MODE ``hang``: attends, waits for its turn, notes it, then hangs (to be SIGKILLed).
Every turn is a JSON line in LEDGER. Prints "ready" once it attends.
"""

import asyncio
import json
import os
import sys
from typing import Any

from tta_agent_coordination.interactions import AgentMessaging
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
            await messaging.meeting.speak(agent, mid, {"from": name, "turn": turn.turn})
    finally:
        await coordinator.aclose()
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
