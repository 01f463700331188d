"""The conversation record on Postgres: writes, history queries, restore after a Redis loss."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tta_agent_coordination.interactions import (
    AgentMessaging,
    ConversationContext,
    MessageKind,
)
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import delete_prefix, fake_redis, unique_prefix
from tta_agent_coordination_postgres import PostgresInteractionStore, PostgresMessageStore

ALICE = AgentId("user", "alice")
BOB = AgentId("support", "bob")
VENDOR = AgentId("vendor", "v1")


@pytest.fixture
async def record(store: PostgresMessageStore) -> PostgresInteractionStore:
    return PostgresInteractionStore(store)


@pytest.fixture
async def coordinator(coordination_redis, key_prefix) -> AsyncIterator[RedisMessageCoordinator]:
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    yield coord
    await coord.aclose()


async def _setup(messaging: AgentMessaging) -> None:
    await messaging.register_organization("acme", name="Acme")
    await messaging.register_organization("globex", accepts_from=["acme"])
    await messaging.register_agent(ALICE, organization="acme", name="Alice")
    await messaging.register_agent(BOB, organization="acme")
    await messaging.register_agent(VENDOR, organization="globex")


async def test_everything_is_recorded_and_queryable(
    coordinator: RedisMessageCoordinator, record: PostgresInteractionStore
) -> None:
    messaging = AgentMessaging(coordinator, store=record, handler_visibility_timeout=2.0)
    await _setup(messaging)

    @messaging.register_handler(BOB)
    async def bob(ctx: ConversationContext) -> Any:
        return {"re": ctx.payload}

    async with messaging:
        first = await messaging.sync_conversation.send_and_wait(ALICE, BOB, "q1", timeout=10)
        assert await messaging.sync_conversation.end_conversation(ALICE, BOB)
        second = await messaging.sync_conversation.send_and_wait(ALICE, BOB, "q2", timeout=10)
        await messaging.one_way.send(ALICE, BOB, "notice")
        await messaging.async_conversation.send(ALICE, BOB, "inbox 1")
        await messaging.async_conversation.send(ALICE, BOB, "inbox 2")
        [read] = await messaging.async_conversation.get_unread_messages(BOB, limit=1)
        assert read.payload == "inbox 1"

    history = await record.conversation(BOB, ALICE)
    kinds = [(m.kind, m.payload) for m in history]
    assert kinds[:5] == [
        (MessageKind.SYNC, "q1"),
        (MessageKind.REPLY, {"re": "q1"}),
        (MessageKind.ENDED, None),
        (MessageKind.SYNC, "q2"),
        (MessageKind.REPLY, {"re": "q2"}),
    ]
    assert {p for _, p in kinds[5:]} == {"notice", "inbox 1", "inbox 2"}
    assert first.conversation_id != second.conversation_id
    assert history[0].conversation_id == first.conversation_id
    assert [m.payload for m in await record.conversation(ALICE, BOB, limit=2)] == [
        p for _, p in kinds[-2:]
    ]
    assert [m.payload for m in await record.inbox(BOB)] == ["inbox 1", "inbox 2"]
    assert [m.payload for m in await record.inbox(BOB, unread_only=True)] == ["inbox 2"]
    opened = await record.open_conversations()
    assert [c.conversation_id for c in opened] == [second.conversation_id]
    assert await record.organization_agents("acme") == [BOB, ALICE]
    orgs, agents = await record.load_directory()
    assert [(o.org_id, o.accepts_from) for o in orgs] == [("acme", ()), ("globex", ("acme",))]
    assert {(str(a.agent_id), a.organization) for a in agents} == {
        (str(ALICE), "acme"),
        (str(BOB), "acme"),
        (str(VENDOR), "globex"),
    }
    with pytest.raises(ValueError, match="limit"):
        await record.conversation(ALICE, BOB, limit=0)


async def test_restore_after_a_redis_loss(record: PostgresInteractionStore) -> None:
    prefix = unique_prefix()
    lost = fake_redis()
    before = RedisMessageCoordinator(lost, key_prefix=prefix)
    messaging = AgentMessaging(before, store=record)
    await _setup(messaging)
    for n in range(3):
        await messaging.async_conversation.send(ALICE, BOB, n)
    await messaging.async_conversation.get_unread_messages(BOB, limit=1)  # 0 is read
    waiting = asyncio.create_task(
        messaging.sync_conversation.send_and_wait(ALICE, BOB, "open", timeout=30)
    )
    await asyncio.sleep(0.1)
    [opened] = await record.open_conversations()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await before.aclose()
    await delete_prefix(lost, prefix)  # Redis loses everything
    await lost.aclose()

    fresh = fake_redis()
    after = RedisMessageCoordinator(fresh, key_prefix=prefix)
    try:
        restored = AgentMessaging(after, store=record)
        report = await restored.restore()
        assert (report.organizations, report.agents) == (2, 3)
        assert report.inbox_messages == 2
        assert report.conversations == 1
        assert (await restored.get_agent(ALICE)).name == "Alice"
        assert (await restored.get_organization("globex")).accepts_from == ("acme",)
        unread = await restored.async_conversation.get_unread_messages(BOB)
        assert [m.payload for m in unread] == [1, 2]
        again = await restored.restore()  # idempotent: nothing appended twice
        assert again.inbox_messages == 0
        assert again.conversations == 0
        assert await restored.async_conversation.get_unread_messages(BOB) == []
        # The restored conversation is open, with its epoch: ending it ends that one.
        assert await restored.sync_conversation.end_conversation(ALICE, BOB)
        assert await record.open_conversations() == []
        ended = (await record.conversation(ALICE, BOB))[-1]
        assert ended.kind is MessageKind.ENDED
        assert ended.conversation_id == opened.conversation_id
    finally:
        await after.aclose()
        await delete_prefix(fresh, prefix)
        await fresh.aclose()


async def test_restore_needs_a_store(coordinator: RedisMessageCoordinator) -> None:
    from tta_agent_coordination.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        await AgentMessaging(coordinator).restore()


async def test_a_failing_store_does_not_fail_the_conversation(
    coordinator: RedisMessageCoordinator, pg_dsn: str
) -> None:
    broken = PostgresMessageStore(pg_dsn, schema="t_never_migrated_conv")
    try:
        messaging = AgentMessaging(coordinator, store=PostgresInteractionStore(broken))
        await _setup(messaging)  # the writes fail (no tables) and are logged
        sent = await messaging.async_conversation.send(ALICE, BOB, "still works")
        assert sent.payload == "still works"
    finally:
        await broken.aclose()
