"""A two-agent interview (sync): the interviewer asks, the candidate answers each turn.

``send_and_wait`` blocks the interviewer until the candidate's handler answers; at the
end the interviewer ends the conversation (the pair could start a new one later).
Exits 0 when every question got its answer.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from _common import messaging_on_redis

from tta_agent_coordination import AgentId
from tta_agent_coordination.interactions import ConversationContext

INTERVIEWER = AgentId("interviewer", "hr")
CANDIDATE = AgentId("candidate", "kim")
QUESTIONS = ["Your name?", "Favourite data structure?", "Why this job?"]
ANSWERS = {
    "Your name?": "Kim",
    "Favourite data structure?": "the skip list",
    "Why this job?": "agents that talk",
}


async def main() -> int:
    """Three turns of questions; 0 when each answer matches."""
    async with messaging_on_redis() as messaging:
        await messaging.register_organization("hiring")
        for agent in (INTERVIEWER, CANDIDATE):
            await messaging.register_agent(agent, organization="hiring")

        @messaging.register_handler(CANDIDATE)
        async def candidate(ctx: ConversationContext) -> Any:
            return ANSWERS[ctx.payload]  # the return value answers the wait

        transcript: list[tuple[str, str]] = []
        async with messaging:
            for question in QUESTIONS:
                answer = await messaging.sync_conversation.send_and_wait(
                    INTERVIEWER, CANDIDATE, question, timeout=10
                )
                transcript.append((question, answer.payload))
                print(f"Q: {question}\nA: {answer.payload}  ({answer.conversation_id})")
            ended = await messaging.sync_conversation.end_conversation(INTERVIEWER, CANDIDATE)
    ok = ended and transcript == [(q, ANSWERS[q]) for q in QUESTIONS]
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
