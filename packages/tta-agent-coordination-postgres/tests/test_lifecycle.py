from __future__ import annotations

import asyncio

import pytest

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    FailureType,
    MessageType,
    RedisAgentRegistry,
    RedisMessageCoordinator,
)
from tta_agent_coordination.store import (
    LifecycleKind,
    MessageEvent,
    MessageStatus,
    StorePayloadError,
    StoreUnavailableError,
)
from tta_agent_coordination_postgres import PostgresMessageStore

A = AgentId("planner", "p1")
B = AgentId("writer", "w1")
C = AgentId("writer", "w2")


def msg(i: int, **kw) -> AgentMessage:
    return AgentMessage(
        message_id=f"msg-{i:06d}",
        sender=A,
        recipient=kw.pop("recipient", B),
        message_type=MessageType.REQUEST,
        payload={"i": i},
        **kw,
    )


@pytest.fixture(params=["async", "sync"])
def durability(request) -> str:
    return request.param


@pytest.fixture
async def coordinator(coordination_redis, key_prefix, store, durability):
    c = RedisMessageCoordinator(
        coordination_redis,
        key_prefix=key_prefix,
        store=store,
        durability=durability,
        backoff_base=0,
        retry_attempts=1,
    )
    yield c
    await c.aclose()


async def status(store: PostgresMessageStore, message_id: str) -> tuple[str, int]:
    [record] = await store.get(message_id)
    return record.status.value, record.attempts


async def test_full_lifecycle_is_recorded(coordinator, store):
    r = await coordinator.send_message(A, B, msg(1, correlation_id="conv-1"))
    assert r.delivered
    await coordinator.flush_store()
    assert await status(store, "msg-000001") == ("queued", 0)

    got = await coordinator.receive(B)
    assert got is not None
    await coordinator.flush_store()
    assert await status(store, "msg-000001") == ("leased", 1)

    assert await coordinator.nack(B, got.token, FailureType.TRANSIENT, "flaky")
    await coordinator.flush_store()
    [rec] = await store.get("msg-000001")
    assert (rec.status, rec.attempts, rec.last_error) == (MessageStatus.RETRYING, 1, "flaky")

    got = await coordinator.receive(B)
    assert got is not None
    assert await coordinator.ack(B, got.token)
    await coordinator.flush_store()
    [rec] = await store.get("msg-000001")
    assert rec.status is MessageStatus.ACKED
    assert rec.attempts == 2
    assert rec.settled_at is not None
    assert rec.message is not None
    assert rec.message.payload == {"i": 1}
    assert rec.sender == A
    assert [e.kind for e in rec.events] == [
        LifecycleKind.SENT,
        LifecycleKind.LEASED,
        LifecycleKind.RETRYING,
        LifecycleKind.LEASED,
        LifecycleKind.ACKED,
    ]
    assert [m.message_id for m in await store.conversation("conv-1")] == ["msg-000001"]
    assert [m.message_id for m in await store.history(A)] == ["msg-000001"]
    assert [m.message_id for m in await store.history(B)] == ["msg-000001"]
    assert await store.history(C) == []


async def test_dead_letters_and_replay(coordinator, store):
    await coordinator.send_message(A, B, msg(2))
    got = await coordinator.receive(B)
    assert got is not None
    await coordinator.nack(B, got.token, FailureType.PERMANENT, "bad input")
    await coordinator.flush_store()
    [dead] = await store.dead(B)
    assert (dead.message_id, dead.failure, dead.last_error) == (
        "msg-000002",
        "permanent",
        "bad input",
    )

    assert await coordinator.replay_dead_letters(B) == 1
    await coordinator.flush_store()
    assert await status(store, "msg-000002") == ("queued", 0)
    assert await store.dead(B) == []


async def test_expired_leases_are_recorded(coordinator, store):
    await coordinator.send_message(A, B, msg(3))
    assert await coordinator.receive(B, visibility_timeout=0.01) is not None
    await asyncio.sleep(0.05)
    assert await coordinator.recover_pending(B) == 1
    await coordinator.flush_store()
    [rec] = await store.get("msg-000003")
    assert (rec.status, rec.last_error) == (MessageStatus.RETRYING, "lease expired")
    # The last allowed delivery expires too: the receive that reclaims it dead-letters it.
    assert await coordinator.receive(B, visibility_timeout=0.01) is not None
    await asyncio.sleep(0.05)
    assert await coordinator.receive(B) is None
    await coordinator.flush_store()
    [rec] = await store.get("msg-000003")
    assert (rec.status, rec.failure) == (MessageStatus.DEAD, "timeout")


async def test_broadcast_records_one_row_per_recipient(coordinator, store):
    m = msg(4)
    results = await coordinator.broadcast_message(A, m, [B, C])
    assert all(r.delivered for r in results)
    await coordinator.flush_store()
    assert sorted(str(r.recipient) for r in await store.get("msg-000004")) == [str(B), str(C)]
    stats = await store.stats()
    assert stats.messages[MessageStatus.QUEUED] == 2
    assert stats.unsettled == 2


async def test_unstorable_payload_raises_before_anything_is_sent(coordinator, store):
    with pytest.raises(StorePayloadError, match="NUL"):
        await coordinator.send_message(
            A,
            B,
            AgentMessage(
                message_id="msg-nul-1",
                sender=A,
                recipient=B,
                message_type=MessageType.EVENT,
                payload={"x": "a\x00b"},
            ),
        )
    assert await coordinator.receive(B) is None
    await coordinator.flush_store()
    assert await store.get("msg-nul-1") == []


async def test_direct_record_of_bad_data_writes_nothing(store):
    bad = MessageEvent(
        kind=LifecycleKind.SENT, message_id="m-bad-1", recipient=B, envelope='{"x": "\\u0000"}'
    )
    good = MessageEvent(kind=LifecycleKind.SENT, message_id="m-good-1", recipient=B, envelope="{}")
    with pytest.raises(StorePayloadError):
        await store.record([good, bad])
    assert await store.get("m-good-1") == []


async def test_events_out_of_order_give_the_same_state(store):
    sent = MessageEvent(
        kind=LifecycleKind.SENT,
        message_id="m-ooo-1",
        recipient=B,
        incarnation=100,
        envelope=msg(9).model_dump_json(),
    )
    leased = MessageEvent(
        kind=LifecycleKind.LEASED, message_id="m-ooo-1", recipient=B, incarnation=100, attempts=1
    )
    acked = MessageEvent(
        kind=LifecycleKind.ACKED, message_id="m-ooo-1", recipient=B, incarnation=100, attempts=1
    )
    await store.record([acked])
    await store.record([leased, acked])
    await store.record([sent])
    [rec] = await store.get("m-ooo-1")
    assert rec.status is MessageStatus.ACKED
    assert rec.message is not None
    assert len(rec.events) == 3


async def test_sync_mode_reports_undelivered_when_the_store_fails(
    coordination_redis, key_prefix, store
):
    original = store.record
    down = [True]

    async def record(events):
        if down[0]:
            raise StoreUnavailableError("postgres down")
        await original(events)

    store.record = record  # type: ignore[method-assign]
    c = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, store=store, durability="sync"
    )
    r = await c.send_message(A, B, msg(10))
    assert not r.delivered
    assert r.error is not None
    assert "store unavailable" in r.error
    # The caller repeats the send once the store is back: a duplicate, now recorded.
    down[0] = False
    r = await c.send_message(A, B, msg(10))
    assert r.delivered
    assert r.duplicate
    assert await status(store, "msg-000010") == ("queued", 0)
    await c.aclose()


async def test_registry_records_the_agent_directory(
    coordination_redis, key_prefix, store, durability
):
    registry = RedisAgentRegistry(
        coordination_redis, key_prefix=key_prefix, store=store, durability=durability
    )
    await registry.register_id(B, name="writer one", capabilities=["write"])
    assert await registry.evict(C) is False
    assert await registry.deregister(B)
    await registry.aclose()
    [agent] = await store.agents()
    assert agent.agent_id == B
    assert agent.name == "writer one"
    assert agent.capabilities == ["write"]
    assert agent.deregistered_at is not None
    assert await store.agents(include_deregistered=False) == []


async def test_heartbeats_move_last_seen_but_never_revive_a_deregistered_agent(
    coordination_redis, key_prefix, store
):
    registry = RedisAgentRegistry(
        coordination_redis,
        key_prefix=key_prefix,
        store=store,
        heartbeat_ttl_s=0.6,
        heartbeat_interval_s=0.05,
        store_seen_interval_s=0.1,
    )
    await registry.register_id(B)
    await registry.register_id(C)
    await registry.deregister(C)
    await registry._writer.flush()  # type: ignore[union-attr]
    before = {a.agent_id: a for a in await store.agents()}
    registry.start_heartbeats()
    await asyncio.sleep(0.5)
    await registry.aclose(deregister=False)
    after = {a.agent_id: a for a in await store.agents()}
    assert after[B].last_seen > before[B].last_seen
    assert after[B].deregistered_at is None
    assert after[C].last_seen == before[C].last_seen
    assert after[C].deregistered_at == before[C].deregistered_at


async def test_record_seen_of_unknown_and_deregistered_agents(store):
    from tta_agent_coordination.store import AgentEvent, AgentEventKind

    await store.record_agents(
        [
            AgentEvent(kind=AgentEventKind.REGISTERED, agent_id=B),
            AgentEvent(kind=AgentEventKind.REGISTERED, agent_id=C),
            AgentEvent(kind=AgentEventKind.DEREGISTERED, agent_id=C),
        ]
    )
    before = {a.agent_id: a for a in await store.agents()}
    await store.record_seen([])
    await store.record_seen([B, C, AgentId("ghost", "g1")])
    after = {a.agent_id: a for a in await store.agents()}
    assert set(after) == {B, C}  # an unknown agent is not invented
    assert after[B].last_seen > before[B].last_seen
    assert after[C] == before[C]


async def test_queries_validate_limits(store):
    from tta_agent_coordination_postgres import StoreConfigurationError

    with pytest.raises(StoreConfigurationError):
        await store.history(A, limit=0)


async def test_prune_deletes_only_settled(coordinator, store):
    from datetime import timedelta

    await coordinator.send_message(A, B, msg(20))
    await coordinator.send_message(A, B, msg(21))
    got = await coordinator.receive(B)
    assert got is not None
    await coordinator.ack(B, got.token)
    await coordinator.flush_store()
    assert await store.prune(older_than=timedelta(hours=1)) == 0
    assert await store.prune(older_than=timedelta(0)) == 1
    assert [m.message_id for m in await store.history(B)] == ["msg-000021"]
    with pytest.raises(ValueError, match="older_than"):
        await store.prune(older_than=timedelta(seconds=-1))
