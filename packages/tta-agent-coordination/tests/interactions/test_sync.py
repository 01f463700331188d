import asyncio
from typing import Any

import pytest

from tta_agent_coordination import RedisAgentRegistry
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.interactions import (
    AgentMessaging,
    ConversationBusyError,
    ConversationContext,
    ConversationEndedError,
    ConversationTimeoutError,
    CrossOrganizationError,
    MessageKind,
    NoHandlerError,
    PayloadError,
)
from tta_agent_coordination.interactions.keys import pair_id
from tta_agent_coordination.models import AgentId

from .conftest import ALICE, BOB, CAROL, eventually


async def test_handler_return_value_answers(messaging: AgentMessaging) -> None:
    seen: list[ConversationContext] = []

    async def bob(ctx: ConversationContext) -> Any:
        seen.append(ctx)
        return {"echo": ctx.payload["q"]}

    await messaging.add_handler(BOB, bob)
    answer = await messaging.sync_conversation.send_and_wait(ALICE, BOB, {"q": 1}, timeout=10)
    assert answer.payload == {"echo": 1}
    assert answer.kind is MessageKind.REPLY
    assert answer.sender == BOB
    assert answer.recipient == ALICE
    ctx = seen[0]
    assert ctx.sender == ALICE
    assert ctx.recipient == BOB
    assert ctx.message.kind is MessageKind.SYNC
    assert ctx.conversation_id == answer.conversation_id
    assert ctx.conversation_id.startswith(pair_id(ALICE, BOB) + "-")


async def test_ctx_reply_answers_once(messaging: AgentMessaging) -> None:
    async def bob(ctx: ConversationContext) -> Any:
        assert await ctx.reply("first")
        assert not await ctx.reply("second")  # the wait is over
        return "ignored"

    await messaging.add_handler(BOB, bob)
    answer = await messaging.sync_conversation.send_and_wait(ALICE, BOB, "q", timeout=10)
    assert answer.payload == "first"


async def test_reply_from_outside_the_handler(messaging: AgentMessaging) -> None:
    taken = asyncio.Event()

    async def bob(ctx: ConversationContext) -> None:
        taken.set()  # answered later, by someone else

    await messaging.add_handler(BOB, bob)
    sync = messaging.sync_conversation
    waiting = asyncio.create_task(sync.send_and_wait(ALICE, BOB, "q", timeout=10))
    await asyncio.wait_for(taken.wait(), 10)
    assert not await sync.reply(CAROL, ALICE, "not you")  # carol is not in this pair's wait
    assert await sync.reply(BOB, ALICE, {"a": 42})
    assert (await waiting).payload == {"a": 42}
    assert not await sync.reply(BOB, ALICE, "too late")


async def test_second_wait_from_same_side_is_busy(messaging: AgentMessaging) -> None:
    taken = asyncio.Event()

    async def bob(ctx: ConversationContext) -> None:
        taken.set()

    await messaging.add_handler(BOB, bob)
    sync = messaging.sync_conversation
    first = asyncio.create_task(sync.send_and_wait(ALICE, BOB, 1, timeout=10))
    await asyncio.wait_for(taken.wait(), 10)
    with pytest.raises(ConversationBusyError):
        await sync.send_and_wait(ALICE, BOB, 2, timeout=10)
    # Another pair is independent.
    other = asyncio.create_task(sync.send_and_wait(ALICE, CAROL, 3, timeout=0.5))
    with pytest.raises(NoHandlerError):
        await other
    assert await sync.reply(BOB, ALICE, "done")
    assert (await first).payload == "done"


async def test_end_wakes_the_waiter_and_the_pair_talks_again(
    messaging: AgentMessaging,
) -> None:
    taken = asyncio.Event()
    answer_next = False

    async def bob(ctx: ConversationContext) -> Any:
        taken.set()
        return "hello again" if answer_next else None

    await messaging.add_handler(BOB, bob)
    sync = messaging.sync_conversation
    loop = asyncio.get_running_loop()
    waiting = asyncio.create_task(sync.send_and_wait(ALICE, BOB, "q", timeout=30))
    await asyncio.wait_for(taken.wait(), 10)
    started = loop.time()
    assert await sync.end_conversation(BOB, ALICE)
    with pytest.raises(ConversationEndedError) as info:
        await waiting
    assert loop.time() - started < 5  # woken by the end, not by its 30 s timeout
    assert info.value.ended_by == str(BOB)
    first_id = info.value.conversation_id
    assert not await sync.end_conversation(ALICE, BOB)  # nothing open any more
    answer_next = True
    answer = await sync.send_and_wait(ALICE, BOB, "again", timeout=10)
    assert answer.payload == "hello again"
    assert answer.conversation_id != first_id  # a new epoch
    assert int(answer.conversation_id.rsplit("-", 1)[1]) > int(first_id.rsplit("-", 1)[1])


async def test_no_handler_and_timeout_are_told_apart(messaging: AgentMessaging) -> None:
    sync = messaging.sync_conversation
    with pytest.raises(NoHandlerError):
        await sync.send_and_wait(ALICE, CAROL, "anyone?", timeout=0.3)

    async def bob(ctx: ConversationContext) -> None:
        return None  # takes it, never answers

    await messaging.add_handler(BOB, bob)
    with pytest.raises(ConversationTimeoutError) as info:
        await sync.send_and_wait(ALICE, BOB, "q", timeout=1.0)
    assert not isinstance(info.value, NoHandlerError)
    # The timed-out wait is cleared: the side is not busy.
    assert not await sync.reply(BOB, ALICE, "late")


async def test_ping_pong_send_and_wait_answers_the_other_wait(
    messaging: AgentMessaging,
) -> None:
    sync = messaging.sync_conversation
    got: list[Any] = []

    async def bob(ctx: ConversationContext) -> None:
        # Bob answers by asking back: his message is Alice's answer, and he waits.
        reply = await sync.send_and_wait(BOB, ALICE, "your name?", timeout=10)
        got.append(reply.payload)

    await messaging.add_handler(BOB, bob)
    answer = await sync.send_and_wait(ALICE, BOB, "hi", timeout=10)
    assert answer.payload == "your name?"
    assert answer.kind is MessageKind.SYNC
    # Alice's next send_and_wait answers Bob's wait; nobody answers hers: she ends it.
    follow = asyncio.create_task(sync.send_and_wait(ALICE, BOB, "alice", timeout=10))
    await eventually(lambda: got == ["alice"])
    assert await sync.end_conversation(ALICE, BOB)
    with pytest.raises(ConversationEndedError):
        await follow


async def test_bad_arguments(messaging: AgentMessaging) -> None:
    sync = messaging.sync_conversation
    with pytest.raises(ConfigurationError):
        await sync.send_and_wait(ALICE, ALICE, "me", timeout=1)
    with pytest.raises(ConfigurationError):
        await sync.send_and_wait(ALICE, BOB, "q", timeout=0)
    with pytest.raises(PayloadError):
        await sync.send_and_wait(ALICE, BOB, {"x": object()}, timeout=1)
    with pytest.raises(PayloadError):
        await sync.send_and_wait(ALICE, BOB, float("nan"), timeout=1)
    with pytest.raises(PayloadError):
        await sync.reply(BOB, ALICE, "x" * (messaging.max_payload_bytes + 1))


async def test_cancelled_wait_frees_the_side(messaging: AgentMessaging) -> None:
    sync = messaging.sync_conversation
    waiting = asyncio.create_task(sync.send_and_wait(ALICE, CAROL, "q", timeout=30))
    await asyncio.sleep(0)
    side = "a" if str(ALICE) < str(CAROL) else "b"
    state = messaging.keys.conversation(pair_id(ALICE, CAROL)).state
    # Cancelled right after its wait is in the state: mid-send (where the Redis client
    # may swallow a cancellation; send_and_wait raises it all the same).
    await eventually(lambda: messaging.redis.hexists(state, f"wait_{side}"))
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    with pytest.raises(NoHandlerError):  # not ConversationBusyError
        await sync.send_and_wait(ALICE, CAROL, "q", timeout=0.2)


async def test_handler_failure_is_retried(messaging: AgentMessaging) -> None:
    calls: list[int] = []

    async def bob(ctx: ConversationContext) -> Any:
        calls.append(ctx.attempts)
        if len(calls) == 1:
            raise RuntimeError("flaky")
        return "ok"

    await messaging.add_handler(BOB, bob)
    answer = await messaging.sync_conversation.send_and_wait(ALICE, BOB, "q", timeout=10)
    assert answer.payload == "ok"
    assert calls == [1, 2]


async def test_state_expires(messaging: AgentMessaging) -> None:
    async def bob(ctx: ConversationContext) -> Any:
        return "ok"

    await messaging.add_handler(BOB, bob)
    await messaging.sync_conversation.send_and_wait(ALICE, BOB, "q", timeout=10)
    keys = messaging.keys.conversation(pair_id(ALICE, BOB))
    assert 0 < await messaging.redis.pttl(keys.state) <= messaging.retention_ms
    assert 0 < await messaging.redis.pttl(keys.log) <= messaging.retention_ms
    await messaging.sync_conversation.end_conversation(ALICE, BOB)
    assert 0 < await messaging.redis.pttl(keys.state) <= messaging.ended_retention_ms


async def test_answer_crosses_into_an_organization_that_only_accepts_the_other_way(
    messaging: AgentMessaging,
) -> None:
    vendor = AgentId("vendor", "v1")
    await messaging.register_organization("globex", accepts_from=["acme"])
    await messaging.register_agent(vendor, organization="globex")

    async def vendor_handler(ctx: ConversationContext) -> Any:
        return "quote: 42"

    await messaging.add_handler(vendor, vendor_handler)
    answer = await messaging.sync_conversation.send_and_wait(ALICE, vendor, "quote?", timeout=10)
    assert answer.payload == "quote: 42"
    # Outside an answer, globex may not address acme.
    with pytest.raises(CrossOrganizationError):
        await messaging.sync_conversation.reply(vendor, ALICE, "unsolicited")


async def test_handlers_register_their_agent_with_a_registry(coordinator, key_prefix) -> None:
    registry = RedisAgentRegistry(coordinator.redis, key_prefix=key_prefix, heartbeat_ttl_s=3.0)
    m = AgentMessaging(coordinator, registry=registry, handler_visibility_timeout=2.0)
    await m.register_organization("acme")
    for agent in (ALICE, BOB):
        await m.register_agent(agent, organization="acme")

    @m.register_handler(BOB)
    async def bob(ctx: ConversationContext) -> Any:
        return "registered"

    try:
        async with m:
            assert await registry.get(BOB) is not None
            answer = await m.sync_conversation.send_and_wait(ALICE, BOB, "hi", timeout=10)
            assert answer.payload == "registered"
        assert await registry.get(BOB) is None  # deregistered on a graceful stop
    finally:
        await registry.aclose()


async def test_a_dead_askers_wait_stops_counting_after_its_deadline(
    messaging: AgentMessaging,
) -> None:
    sync = messaging.sync_conversation
    keys = messaging.keys.conversation(pair_id(ALICE, BOB))
    side = "a" if str(ALICE) < str(BOB) else "b"
    # An asker that died mid-wait: its wait is in the state, nobody will clear it.
    await messaging.redis.hset(
        keys.state,
        mapping={
            "a": min(str(ALICE), str(BOB)),
            "b": max(str(ALICE), str(BOB)),
            "status": "open",
            "epoch": "1",
            f"wait_{side}": "dead-corr",
            f"addr_{side}": messaging.coordinator.reply_inbox.model_dump_json(),
            f"picked_{side}": "0",
            f"until_{side}": "1",  # long past (server clock, ms)
        },
    )
    assert not await sync.reply(BOB, ALICE, "nobody listens")

    async def bob(ctx: ConversationContext) -> Any:
        return "fresh"

    await messaging.add_handler(BOB, bob)
    answer = await sync.send_and_wait(ALICE, BOB, "again", timeout=10)  # not busy
    assert answer.payload == "fresh"


async def test_cancelled_at_any_point_leaves_no_wait(messaging: AgentMessaging) -> None:
    sync = messaging.sync_conversation
    state = messaging.keys.conversation(pair_id(ALICE, CAROL)).state
    side = "a" if str(ALICE) < str(CAROL) else "b"
    for steps in range(15):
        waiting = asyncio.create_task(sync.send_and_wait(ALICE, CAROL, steps, timeout=30))
        for _ in range(steps):
            await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not await messaging.redis.hexists(state, f"wait_{side}"), steps
