import asyncio

import pytest

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.interactions import (
    AgentMessaging,
    ConversationContext,
    MessageKind,
    PayloadError,
)

from .conftest import ALICE, BOB, CAROL, eventually


async def test_one_way_reaches_every_handler(messaging: AgentMessaging) -> None:
    got: list[ConversationContext] = []

    async def handler(ctx: ConversationContext) -> str:
        got.append(ctx)
        return "ignored: nobody waits"

    await messaging.add_handler(BOB, handler)
    await messaging.add_handler(CAROL, handler)
    results = await messaging.one_way.send(ALICE, [BOB, CAROL], {"notice": "maintenance"})
    assert [r.delivered for r in results] == [True, True]
    await eventually(lambda: len(got) == 2)
    assert {str(c.recipient) for c in got} == {str(BOB), str(CAROL)}
    assert all(c.message.kind is MessageKind.ONE_WAY for c in got)
    assert all(c.payload == {"notice": "maintenance"} for c in got)
    assert await messaging.one_way.send(ALICE, [], "nothing") == []


async def test_one_way_reply_goes_back_one_way(messaging: AgentMessaging) -> None:
    back: list[str] = []

    async def bob(ctx: ConversationContext) -> None:
        assert await ctx.reply("pong")

    async def alice(ctx: ConversationContext) -> None:
        back.append(ctx.payload)

    await messaging.add_handler(BOB, bob)
    await messaging.add_handler(ALICE, alice)
    await messaging.one_way.send(ALICE, BOB, "ping")
    await eventually(lambda: back == ["pong"])


async def test_one_way_waits_for_a_handler_started_later(messaging: AgentMessaging) -> None:
    await messaging.one_way.send(ALICE, BOB, "queued")
    got = asyncio.Event()

    async def bob(ctx: ConversationContext) -> None:
        got.set()

    await messaging.add_handler(BOB, bob)
    await asyncio.wait_for(got.wait(), 10)


async def test_handler_registration_rules(messaging: AgentMessaging) -> None:
    async def h(ctx: ConversationContext) -> None:
        return None

    await messaging.add_handler(BOB, h)
    with pytest.raises(ConfigurationError):
        await messaging.add_handler(BOB, h)
    with pytest.raises(ConfigurationError):
        messaging.register_handler(CAROL)(h)  # already running: use add_handler
    with pytest.raises(ConfigurationError):
        await messaging.add_handler(CAROL, "not a function")  # type: ignore[arg-type]
    with pytest.raises(PayloadError):
        await messaging.one_way.send(ALICE, BOB, {1, 2})
    assert messaging.handlers.agents() == [BOB]


async def test_decorator_before_start(coordinator) -> None:
    m = AgentMessaging(coordinator, handler_visibility_timeout=2.0)
    await m.register_organization("acme")
    for agent in (ALICE, BOB):
        await m.register_agent(agent, organization="acme")

    @m.register_handler(BOB)
    async def bob(ctx: ConversationContext) -> str:
        return f"hi {ctx.sender.instance}"

    async with m:
        answer = await m.sync_conversation.send_and_wait(ALICE, BOB, "hello", timeout=10)
    assert answer.payload == "hi alice"
