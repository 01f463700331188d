import asyncio
from typing import Any

from tta_agent_coordination.interactions import AgentMessaging, ConversationContext
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

PAIRS = 100


async def test_100_concurrent_conversations_between_200_agents(
    coordinator: RedisMessageCoordinator,
) -> None:
    m = AgentMessaging(coordinator, handler_visibility_timeout=10.0, handler_concurrency=2)
    await m.register_organization("big")
    askers = [AgentId("asker", f"a{i}") for i in range(PAIRS)]
    answerers = [AgentId("answerer", f"b{i}") for i in range(PAIRS)]
    for agent in askers + answerers:
        await m.register_agent(agent, organization="big")

    async def answer(ctx: ConversationContext) -> Any:
        return {"by": str(ctx.recipient), "to": str(ctx.sender), "q": ctx.payload}

    for agent in answerers:
        m.register_handler(agent)(answer)

    async def converse(i: int) -> None:
        for turn in range(2):
            question = {"i": i, "turn": turn}
            reply = await m.sync_conversation.send_and_wait(
                askers[i], answerers[i], question, timeout=60
            )
            assert reply.payload == {
                "by": str(answerers[i]),
                "to": str(askers[i]),
                "q": question,
            }
            assert reply.sender == answerers[i]
            assert reply.recipient == askers[i]

    async with m:
        await asyncio.gather(*(converse(i) for i in range(PAIRS)))
        pairs = zip(askers, answerers, strict=True)
        ends = [m.sync_conversation.end_conversation(a, b) for a, b in pairs]
        assert all(await asyncio.gather(*ends))
