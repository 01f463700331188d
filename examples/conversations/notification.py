"""A notification (one-way): the ops agent tells every on-call agent about an incident.

Each on-call agent's handler runs (in this process here; in any process that registered
it, in production) and nobody answers. Exits 0 when all three got it.
"""

from __future__ import annotations

import asyncio
import sys

from _common import messaging_on_redis

from tta_agent_coordination import AgentId
from tta_agent_coordination.interactions import ConversationContext

OPS = AgentId("ops", "pager")
ON_CALL = [AgentId("oncall", name) for name in ("ana", "bo", "cy")]


async def main() -> int:
    """Notify three agents; 0 when every one received the notice."""
    received: list[str] = []
    all_in = asyncio.Event()
    async with messaging_on_redis() as messaging:
        await messaging.register_organization("sre", name="SRE")
        for agent in (OPS, *ON_CALL):
            await messaging.register_agent(agent, organization="sre")

        async def on_notice(ctx: ConversationContext) -> None:
            received.append(f"{ctx.recipient.instance}: {ctx.payload['incident']}")
            if len(received) == len(ON_CALL):
                all_in.set()

        for agent in ON_CALL:
            messaging.register_handler(agent)(on_notice)
        async with messaging:
            results = await messaging.one_way.send(OPS, ON_CALL, {"incident": "db latency"})
            print(f"sent to {sum(r.delivered for r in results)} agents")
            await asyncio.wait_for(all_in.wait(), 10)
    for line in sorted(received):
        print(line)
    ok = len(received) == 3
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
