import asyncio
from typing import Any

import pytest

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.interactions import (
    AgentMessaging,
    ConversationContext,
    InboxFullError,
    MessageKind,
    NoHandlerError,
)
from tta_agent_coordination.interactions.keys import pair_id
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

from .conftest import ALICE, BOB, CAROL


async def test_send_and_read_marks_read(messaging: AgentMessaging) -> None:
    inbox = messaging.async_conversation
    sent = await inbox.send(ALICE, BOB, {"n": 1})
    assert sent.kind is MessageKind.ASYNC
    assert sent.conversation_id == pair_id(ALICE, BOB)
    await inbox.send(CAROL, BOB, {"n": 2})
    assert await inbox.unread_count(BOB) == 2
    peek = await inbox.get_unread_messages(BOB, mark_read=False)
    assert [m.payload for m in peek] == [{"n": 1}, {"n": 2}]
    got = await inbox.get_unread_messages(BOB)
    assert [m.payload for m in got] == [{"n": 1}, {"n": 2}]
    assert got[0].message_id == sent.message_id
    assert got[0].sender == ALICE
    assert got[1].sender == CAROL
    assert got[0].sent_at <= got[1].sent_at
    assert await inbox.get_unread_messages(BOB) == []
    assert await inbox.unread_count(BOB) == 0


async def test_limit_keeps_order(messaging: AgentMessaging) -> None:
    inbox = messaging.async_conversation
    for n in range(5):
        await inbox.send(ALICE, BOB, n)
    assert [m.payload for m in await inbox.get_unread_messages(BOB, limit=2)] == [0, 1]
    assert [m.payload for m in await inbox.get_unread_messages(BOB, limit=10)] == [2, 3, 4]
    with pytest.raises(ConfigurationError):
        await inbox.get_unread_messages(BOB, limit=0)


async def test_messages_from_one_agent(messaging: AgentMessaging) -> None:
    inbox = messaging.async_conversation
    await inbox.send(ALICE, BOB, "a1")
    await inbox.send(CAROL, BOB, "c1")
    await inbox.send(ALICE, BOB, "a2")
    from_alice = await inbox.get_messages_from_agent(BOB, ALICE)
    assert [m.payload for m in from_alice] == ["a1", "a2"]
    # Read per sender: gone from the all-senders view too, and the other way round.
    assert [m.payload for m in await inbox.get_unread_messages(BOB)] == ["c1"]
    await inbox.send(CAROL, BOB, "c2")
    assert [m.payload for m in await inbox.get_unread_messages(BOB)] == ["c2"]
    assert await inbox.get_messages_from_agent(BOB, CAROL) == []


async def test_concurrent_readers_get_disjoint_messages(messaging: AgentMessaging) -> None:
    inbox = messaging.async_conversation
    for n in range(60):
        await inbox.send(ALICE, BOB, n)

    async def reader() -> list[int]:
        got: list[int] = []
        while batch := await inbox.get_unread_messages(BOB, limit=3):
            got.extend(m.payload for m in batch)
        return got

    results = await asyncio.gather(*(reader() for _ in range(5)))
    everything = [n for r in results for n in r]
    assert sorted(everything) == list(range(60))  # each exactly once


async def test_wait_for_message_wakes_on_arrival(messaging: AgentMessaging) -> None:
    inbox = messaging.async_conversation
    loop = asyncio.get_running_loop()
    waiting = asyncio.create_task(inbox.wait_for_message(BOB, timeout=10))
    await asyncio.sleep(0.05)
    started = loop.time()
    await inbox.send(ALICE, BOB, "ping")
    got = await waiting
    assert got is not None
    assert got.payload == "ping"
    assert loop.time() - started < 5
    assert await inbox.unread_count(BOB) == 0  # returned messages are read


async def test_wait_for_message_filters_by_sender(messaging: AgentMessaging) -> None:
    inbox = messaging.async_conversation
    waiting = asyncio.create_task(inbox.wait_for_message(BOB, ALICE, timeout=10))
    await inbox.send(CAROL, BOB, "not this")
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await inbox.send(ALICE, BOB, "this")
    got = await waiting
    assert got is not None
    assert got.payload == "this"
    assert [m.payload for m in await inbox.get_unread_messages(BOB)] == ["not this"]


async def test_wait_for_message_times_out(messaging: AgentMessaging) -> None:
    inbox = messaging.async_conversation
    assert await inbox.wait_for_message(BOB, timeout=0.2) is None
    assert await inbox.wait_for_message(BOB, timeout=0) is None
    with pytest.raises(ConfigurationError):
        await inbox.wait_for_message(BOB, timeout=-1)


async def test_wait_for_message_finds_one_already_there(messaging: AgentMessaging) -> None:
    inbox = messaging.async_conversation
    await inbox.send(ALICE, BOB, "early")
    got = await inbox.wait_for_message(BOB, timeout=0)
    assert got is not None
    assert got.payload == "early"


async def test_resume_agent_handler(messaging: AgentMessaging) -> None:
    inbox = messaging.async_conversation
    for n in range(3):
        await inbox.send(ALICE, BOB, n)
    handled: list[Any] = []

    async def bob(ctx: ConversationContext) -> None:
        if ctx.payload == 1 and 1 not in handled:
            handled.append(1)
            raise RuntimeError("crash on 1")
        handled.append(ctx.payload)
        if ctx.payload == 2:
            await ctx.reply("thanks")  # an inbox message back

    with pytest.raises(NoHandlerError):
        await inbox.resume_agent_handler(BOB)
    await messaging.add_handler(BOB, bob)
    with pytest.raises(RuntimeError):
        await inbox.resume_agent_handler(BOB)
    assert await inbox.unread_count(BOB) == 2  # 0 was done; 1 and 2 stay unread
    assert await inbox.resume_agent_handler(BOB) == 2
    assert handled == [0, 1, 1, 2]
    back = await inbox.get_unread_messages(ALICE)
    assert [m.payload for m in back] == ["thanks"]
    assert back[0].sender == BOB


async def test_mark_read(messaging: AgentMessaging) -> None:
    inbox = messaging.async_conversation
    a = await inbox.send(ALICE, BOB, "a")
    b = await inbox.send(ALICE, BOB, "b")
    assert await inbox.mark_read(BOB, [a.message_id, "unknown"]) == 1
    assert await inbox.mark_read(BOB, [a.message_id]) == 0
    assert await inbox.mark_read(BOB, []) == 0
    assert [m.message_id for m in await inbox.get_unread_messages(BOB)] == [b.message_id]


async def test_inbox_cap_and_dedupe(coordinator: RedisMessageCoordinator) -> None:
    m = AgentMessaging(coordinator, inbox_max_unread=2)
    await m.register_organization("acme")
    for agent in (ALICE, BOB):
        await m.register_agent(agent, organization="acme")
    inbox = m.async_conversation
    first = await inbox.send(ALICE, BOB, 1, message_id="id-000001")
    again = await inbox.send(ALICE, BOB, 1, message_id="id-000001")  # a retried send
    assert again.message_id == first.message_id
    assert await inbox.unread_count(BOB) == 1
    await inbox.send(ALICE, BOB, 2)
    with pytest.raises(InboxFullError):
        await inbox.send(ALICE, BOB, 3)
    await inbox.get_unread_messages(BOB, limit=1)
    await inbox.send(ALICE, BOB, 3)
    # Read, but within the dedupe window: still not added twice.
    await inbox.get_unread_messages(BOB)
    await inbox.send(ALICE, BOB, 1, message_id="id-000001")
    assert await inbox.unread_count(BOB) == 0


async def test_inbox_keys_expire_and_the_log_is_capped(
    coordinator: RedisMessageCoordinator,
) -> None:
    m = AgentMessaging(coordinator, log_cap=10, retention_s=60)
    await m.register_organization("acme")
    for agent in (ALICE, BOB):
        await m.register_agent(agent, organization="acme")
    for n in range(300):
        await m.async_conversation.send(ALICE, BOB, n)
    await m.async_conversation.get_unread_messages(BOB, limit=1000)
    keys = m.keys.inbox(BOB)
    assert await m.redis.xlen(keys.log) < 300  # trimmed (approximately) to the cap
    for key in (keys.unread, keys.log, keys.meta, keys.seen):
        ttl = await m.redis.pttl(key)
        assert ttl == -2 or 0 < ttl <= 60_000
    assert await m.redis.hlen(keys.body) == 0  # read bodies are gone


async def test_sender_index_stays_bounded_when_read_through_all_senders(
    coordinator: RedisMessageCoordinator,
) -> None:
    m = AgentMessaging(coordinator, inbox_max_unread=5)
    await m.register_organization("acme")
    for agent in (ALICE, BOB):
        await m.register_agent(agent, organization="acme")
    inbox = m.async_conversation
    for n in range(60):
        await inbox.send(ALICE, BOB, n)
        assert [x.payload for x in await inbox.get_unread_messages(BOB)] == [n]
    index = m.keys.inbox(BOB).from_sender(str(ALICE))
    assert await m.redis.zcard(index) <= 5  # stale ids are trimmed on append
    await inbox.send(ALICE, BOB, "last")
    assert [x.payload for x in await inbox.get_messages_from_agent(BOB, ALICE)] == ["last"]
    assert await m.redis.zcard(index) == 0  # and dropped on a per-sender read


async def test_wait_for_message_cancelled_at_any_point(messaging: AgentMessaging) -> None:
    inbox = messaging.async_conversation
    for steps in range(12):
        waiting = asyncio.create_task(inbox.wait_for_message(BOB, timeout=30))
        for _ in range(steps):
            await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 10)  # promptly, not after its 30 s
