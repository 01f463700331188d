"""One side of a conversation in its own process (run as a script by test_processes.py).

Usage: python conv_process.py REDIS_URL KEY_PREFIX MODE LEDGER [TURNS]

MODE ``answer``: serves ``support:bob``, answering ``{"n": n}`` with ``{"n": n + 1}``.
MODE ``hang``: serves ``support:bob`` but never finishes a handler (to be SIGKILLed).
MODE ``ask``: as ``user:alice``, holds TURNS send-and-wait turns with bob, then ends the
conversation and exits. Every handled message or answer is a JSON line in LEDGER.
Prints "ready" once it serves (or starts asking).
"""

import asyncio
import json
import os
import sys
from typing import Any

from tta_agent_coordination.interactions import AgentMessaging, ConversationContext
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import real_redis

ALICE = AgentId("user", "alice")
BOB = AgentId("support", "bob")


def note(ledger: str, **entry: Any) -> None:
    with open(ledger, "a", encoding="utf-8") as f:
        f.write(json.dumps({"pid": os.getpid(), **entry}) + "\n")


async def main(url: str, prefix: str, mode: str, ledger: str, turns: int) -> None:
    client = await real_redis(url)
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    messaging = AgentMessaging(coordinator, handler_visibility_timeout=2.0)

    async def answer(ctx: ConversationContext) -> Any:
        note(ledger, event="handled", attempts=ctx.attempts, payload=ctx.payload)
        if mode == "hang":
            await asyncio.Event().wait()
        return {"n": ctx.payload["n"] + 1, "pid": os.getpid()}

    if mode in ("answer", "hang"):
        messaging.register_handler(BOB)(answer)
    async with messaging:
        print("ready", flush=True)
        if mode == "ask":
            for n in range(turns):
                reply = await messaging.sync_conversation.send_and_wait(
                    ALICE, BOB, {"n": n}, timeout=30
                )
                note(ledger, event="answer", payload=reply.payload)
            await messaging.sync_conversation.end_conversation(ALICE, BOB)
            print("done", flush=True)
            return
        await asyncio.Event().wait()


if __name__ == "__main__":
    turns = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], turns))
