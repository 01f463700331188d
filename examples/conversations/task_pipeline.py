"""A task pipeline: planner -> researcher -> writer, each a handler asking the next.

The planner's ``send_and_wait`` goes to the researcher's handler, which itself asks the
writer with ``send_and_wait`` before answering: a chain of synchronous conversations
across three agents (each could run in a process of its own). Exits 0 when the final
draft comes back to the client.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from _common import messaging_on_redis

from tta_agent_coordination import AgentId
from tta_agent_coordination.interactions import ConversationContext

CLIENT = AgentId("client", "acme")
PLANNER = AgentId("planner", "p1")
RESEARCHER = AgentId("researcher", "r1")
WRITER = AgentId("writer", "w1")


async def main() -> int:
    """One task through three stages; 0 when the draft names every stage."""
    async with messaging_on_redis() as messaging:
        await messaging.register_organization("studio")
        for agent in (CLIENT, PLANNER, RESEARCHER, WRITER):
            await messaging.register_agent(agent, organization="studio")
        sync = messaging.sync_conversation

        @messaging.register_handler(PLANNER)
        async def planner(ctx: ConversationContext) -> Any:
            plan = {"topic": ctx.payload["task"], "steps": ["research", "write"]}
            found = await sync.send_and_wait(PLANNER, RESEARCHER, plan, timeout=10)
            return {"plan": plan["steps"], **found.payload}

        @messaging.register_handler(RESEARCHER)
        async def researcher(ctx: ConversationContext) -> Any:
            facts = [f"fact about {ctx.payload['topic']}"]
            draft = await sync.send_and_wait(RESEARCHER, WRITER, {"facts": facts}, timeout=10)
            return {"facts": facts, "draft": draft.payload["draft"]}

        @messaging.register_handler(WRITER)
        async def writer(ctx: ConversationContext) -> Any:
            return {"draft": "Draft: " + "; ".join(ctx.payload["facts"])}

        async with messaging:
            result = await sync.send_and_wait(
                CLIENT, PLANNER, {"task": "conversations on Redis"}, timeout=20
            )
    print(result.payload)
    ok = result.payload == {
        "plan": ["research", "write"],
        "facts": ["fact about conversations on Redis"],
        "draft": "Draft: fact about conversations on Redis",
    }
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
