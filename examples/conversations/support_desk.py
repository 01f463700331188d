"""A customer-support desk with an inbox (async).

Customers drop questions into the desk's inbox and go on with their work; two desk
agents take turns reading it (concurrent readers never get the same ticket); each
answer goes back to the customer's own inbox, where the customer waits for it without
polling (``wait_for_message``). Exits 0 when every customer got exactly one answer.
"""

from __future__ import annotations

import asyncio
import sys

from _common import messaging_on_redis

from tta_agent_coordination import AgentId, AgentMessaging

DESK = AgentId("desk", "support")
STAFF = ["sam", "lee"]
CUSTOMERS = [AgentId("customer", f"c{i}") for i in range(6)]


async def staff_member(messaging: AgentMessaging, name: str, handled: list[str]) -> None:
    """Answer tickets from the desk's inbox until it stays empty for a moment."""
    inbox = messaging.async_conversation
    while ticket := await inbox.wait_for_message(DESK, timeout=0.5):
        handled.append(f"{name}:{ticket.sender.instance}")
        await inbox.send(DESK, ticket.sender, {"answer": f"{name} says: try turning it off"})


async def main() -> int:
    """Six tickets, two staff; 0 when each customer gets one answer."""
    async with messaging_on_redis() as messaging:
        await messaging.register_organization("shop")
        for agent in (DESK, *CUSTOMERS):
            await messaging.register_agent(agent, organization="shop")
        inbox = messaging.async_conversation
        for customer in CUSTOMERS:
            await inbox.send(customer, DESK, {"question": f"{customer.instance}: it broke"})
        print(f"desk inbox: {await inbox.unread_count(DESK)} unread tickets")
        handled: list[str] = []
        answers = await asyncio.gather(
            *(staff_member(messaging, name, handled) for name in STAFF),
            *(inbox.wait_for_message(c, DESK, timeout=10) for c in CUSTOMERS),
        )
        got = [a for a in answers[len(STAFF) :] if a is not None]
        for message in got:
            print(f"{message.recipient.instance} <- {message.payload['answer']}")
        per_member = {n: sum(h.startswith(n) for h in handled) for n in STAFF}
        print(f"tickets per staff member: {per_member}")
    ok = len(got) == len(CUSTOMERS) and len(handled) == len(CUSTOMERS)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
