"""migrate_keys: a legacy deployment moves into the core's key space exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis

from tta_agent_coordination import RedisMessageCoordinator
from tta_agent_coordination.interfaces import CoordinatorLimits
from tta_agent_coordination.models import (
    AgentId,
    DeadLetter,
    FailureType,
    MessageSubscription,
    MessageType,
)
from tta_agent_coordination.store import PendingMessage
from tta_agent_coordination.testing.backends import fake_redis
from tta_agents.migrate import (
    LEGACY_DEAD_HEADER,
    LEGACY_ERROR_HEADER,
    MigrationError,
    legacy_report,
    migrate_keys,
)

from .conftest import (
    EXPECTED_WBA_ORDER,
    IPA,
    UNICODE_TEXT,
    WBA,
    LegacyWriter,
    drain,
    write_deployment,
)

WBA_ID = AgentId("world_builder", "w1")
IPA_ID = AgentId("input_processor", "default")


class CrashingTarget:
    """The real coordinator, crashing on the ``crash_on``-th restore call (before or after it)."""

    def __init__(self, inner: RedisMessageCoordinator, crash_on: int, after: bool) -> None:
        self.inner = inner
        self.crash_on = crash_on
        self.after = after
        self.calls = 0
        self.sizes: list[int] = []
        self.subscribed = 0

    @property
    def config(self) -> CoordinatorLimits:
        return self.inner.config

    async def restore_messages(self, messages: Sequence[PendingMessage]) -> list[bool]:
        self.calls += 1
        self.sizes.append(len(messages))
        if self.calls == self.crash_on and not self.after:
            raise RuntimeError("injected crash before the restore")
        flags = await self.inner.restore_messages(messages)
        if self.calls == self.crash_on and self.after:
            raise RuntimeError("injected crash after the restore, before the journal")
        return flags

    async def subscribe(
        self, agent_id: AgentId, message_types: list[MessageType]
    ) -> MessageSubscription:
        self.subscribed += 1
        return await self.inner.subscribe(agent_id, message_types)

    async def subscribers(self, message_type: MessageType) -> list[AgentId]:
        return await self.inner.subscribers(message_type)


async def _dead(coordinator: RedisMessageCoordinator, queue: AgentId) -> dict[str, DeadLetter]:
    letters = await coordinator.dead_letters(queue)
    return {d.message_id: d for d in letters if isinstance(d, DeadLetter)}


async def _check_migrated(coordinator: RedisMessageCoordinator) -> None:
    got = await drain(coordinator, WBA_ID)
    assert [(m, a) for m, a, _ in got] == EXPECTED_WBA_ORDER
    assert {m: p for m, _, p in got}["m-norm-2"] == {"text": UNICODE_TEXT}
    ipa = await drain(coordinator, IPA_ID)
    assert [(m, a, p) for m, a, p in ipa] == [("m-ipa-1", 1, {"text": UNICODE_TEXT})]
    stats = await coordinator.queue_stats(WBA_ID)
    assert stats.delayed == 1  # m-later-1, due in an hour
    dead = await _dead(coordinator, WBA_ID)
    assert set(dead) == {"m-dead-1", "m-res-last"}
    assert dead["m-dead-1"].message.headers[LEGACY_ERROR_HEADER] == "fatal"
    assert dead["m-dead-1"].attempts == 4
    assert dead["m-res-last"].attempts == 4  # 3 nacks + the lease it never settled
    assert dead["m-res-last"].message.headers[LEGACY_DEAD_HEADER].startswith("lease expired")
    assert dead["m-dead-1"].failure_type is FailureType.TRANSIENT  # past its retries
    assert dead["m-res-last"].failure_type is FailureType.TIMEOUT


async def test_a_legacy_deployment_migrates_exactly_once_in_order(
    coordination_redis: aioredis.Redis, key_prefix: str, coordinator: RedisMessageCoordinator
) -> None:
    writer = LegacyWriter(coordination_redis, key_prefix)
    await write_deployment(writer)
    report = await migrate_keys(coordination_redis, coordinator, prefix=key_prefix)
    by_queue = {q.queue: q for q in report.queues}
    wba = by_queue[str(WBA_ID)]
    assert (wba.ready, wba.delayed, wba.requeued, wba.dead) == (6, 1, 2, 2)
    assert by_queue[str(IPA_ID)].ready == 1
    assert report.moved == 12
    assert report.subscriptions == 1
    reasons = sorted(u.reason.split(" ")[0] for u in report.unmovable)
    assert len(report.unmovable) == 4, report.unmovable  # junk sched, reservation, dlq, agent
    assert "agent" in reasons
    # The unmovable entries stay where they were; everything moved is gone.
    assert await coordination_redis.zscore(
        f"{key_prefix}:sched:world_builder:w1:prio:5", "{not json"
    )
    assert await coordination_redis.hexists(
        f"{key_prefix}:reserved:world_builder:w1", "res_m-res-junk"
    )
    assert await coordination_redis.llen(f"{key_prefix}:dlq:world_builder:w1") == 1
    assert await coordination_redis.zcard(f"{key_prefix}:sched:world_builder:w1:prio:9") == 0
    assert (
        await coordination_redis.zcard(f"{key_prefix}:reserved_deadlines:world_builder:w1") == 1
    )  # the junk reservation's
    assert await coordinator.subscribers(MessageType.EVENT) == [WBA_ID]

    again = await migrate_keys(coordination_redis, coordinator, prefix=key_prefix)
    assert again.moved == 0
    assert sum(q.duplicates for q in again.queues) == 0
    assert again.subscriptions == 0
    assert len(again.unmovable) == 4

    await _check_migrated(coordinator)
    third = await migrate_keys(coordination_redis, coordinator, prefix=key_prefix)
    assert third.moved == 0
    assert await coordinator.receive(WBA_ID) is None


async def test_a_dry_run_reports_and_changes_nothing(
    coordination_redis: aioredis.Redis, key_prefix: str, coordinator: RedisMessageCoordinator
) -> None:
    writer = LegacyWriter(coordination_redis, key_prefix)
    await write_deployment(writer)
    before = await legacy_report(coordination_redis, key_prefix)
    plan = await migrate_keys(coordination_redis, coordinator, prefix=key_prefix, dry_run=True)
    assert plan.dry_run
    assert plan.moved == 12
    assert len(plan.unmovable) == 4
    assert plan.subscriptions == 1
    assert await legacy_report(coordination_redis, key_prefix) == before
    assert (await coordinator.queue_stats(WBA_ID)).unsettled == 0
    assert await coordinator.known_queues() == []
    assert await coordinator.subscribers(MessageType.EVENT) == []


@pytest.mark.parametrize("after", [False, True], ids=["before-restore", "after-restore"])
@pytest.mark.parametrize("crash_on", [1, 3])
async def test_an_interrupted_run_resumed_moves_every_message_once(
    coordination_redis: aioredis.Redis,
    key_prefix: str,
    coordinator: RedisMessageCoordinator,
    crash_on: int,
    after: bool,
) -> None:
    writer = LegacyWriter(coordination_redis, key_prefix)
    await write_deployment(writer)
    crashing = CrashingTarget(coordinator, crash_on=crash_on, after=after)
    with pytest.raises(RuntimeError, match="injected crash"):
        await migrate_keys(coordination_redis, crashing, prefix=key_prefix, chunk_size=2)
    resumed = await migrate_keys(coordination_redis, coordinator, prefix=key_prefix)
    finished = sum(crashing.sizes[:-1])  # the chunks the crashed run finished
    assert resumed.moved == 12 - finished
    in_flight = crashing.sizes[-1] if after else 0  # restored, not yet journaled
    assert in_flight > 0 or not after
    assert sum(q.already_present for q in resumed.queues) == in_flight
    await _check_migrated(coordinator)
    assert (await migrate_keys(coordination_redis, coordinator, prefix=key_prefix)).moved == 0


async def test_copies_of_one_message_move_once(
    coordination_redis: aioredis.Redis, key_prefix: str, coordinator: RedisMessageCoordinator
) -> None:
    # The original's recovery re-queued a payload while its consumer still held it: the same
    # message is both scheduled and reserved.
    writer = LegacyWriter(coordination_redis, key_prefix)
    body = await writer.send(WBA, "m-twice")
    agent = writer.agent(WBA)
    await coordination_redis.hset(f"{key_prefix}:reserved:{agent}", "res_x", body)
    report = await migrate_keys(coordination_redis, coordinator, prefix=key_prefix)
    (queue,) = report.queues
    assert (queue.ready, queue.requeued, queue.duplicates) == (1, 0, 1)
    assert await coordination_redis.hlen(f"{key_prefix}:reserved:{agent}") == 0
    assert [m for m, _, _ in await drain(coordinator, WBA_ID)] == ["m-twice"]


async def test_a_message_id_reused_for_other_content_is_kept_and_listed(
    coordination_redis: aioredis.Redis, key_prefix: str, coordinator: RedisMessageCoordinator
) -> None:
    writer = LegacyWriter(coordination_redis, key_prefix)
    await writer.send(WBA, "m-same", payload={"v": 1})
    assert (await migrate_keys(coordination_redis, coordinator, prefix=key_prefix)).moved == 1
    await writer.send(WBA, "m-same", payload={"v": 2})
    report = await migrate_keys(coordination_redis, coordinator, prefix=key_prefix)
    assert report.moved == 0
    (kept,) = report.unmovable
    assert "already moved with different content" in kept.reason
    key = f"{key_prefix}:sched:world_builder:w1:prio:5"
    assert await coordination_redis.zcard(key) == 1
    assert [(m, p) for m, _, p in await drain(coordinator, WBA_ID)] == [("m-same", {"v": 1})]


async def test_a_subscription_already_made_is_not_made_twice(
    coordination_redis: aioredis.Redis, key_prefix: str, coordinator: RedisMessageCoordinator
) -> None:
    writer = LegacyWriter(coordination_redis, key_prefix)
    await writer.subscribe(WBA, "request", "event")
    await coordinator.subscribe(WBA_ID, [MessageType.REQUEST, MessageType.EVENT])
    counting = CrashingTarget(coordinator, crash_on=0, after=False)
    report = await migrate_keys(coordination_redis, counting, prefix=key_prefix)
    assert report.subscriptions == 1
    assert counting.subscribed == 0
    assert not await coordination_redis.exists(f"{key_prefix}:subs:world_builder:w1")


async def test_unknown_subscription_types_are_kept_and_listed(
    coordination_redis: aioredis.Redis, key_prefix: str, coordinator: RedisMessageCoordinator
) -> None:
    writer = LegacyWriter(coordination_redis, key_prefix)
    await writer.subscribe(WBA, "request", "telepathy")
    report = await migrate_keys(coordination_redis, coordinator, prefix=key_prefix)
    (kept,) = report.unmovable
    assert "telepathy" in kept.reason
    assert await coordination_redis.exists(f"{key_prefix}:subs:world_builder:w1")
    assert await coordinator.subscribers(MessageType.REQUEST) == []


async def test_a_client_decoding_responses_migrates_too(key_prefix: str) -> None:
    client = fake_redis(decode_responses=True)
    writer = LegacyWriter(client, key_prefix)
    await writer.send(IPA, "m-text", payload={"text": UNICODE_TEXT})
    await writer.reserve(IPA, "m-held", deadline_in_s=-1)
    coordinator = RedisMessageCoordinator(client, key_prefix=key_prefix)
    try:
        report = await migrate_keys(client, coordinator, prefix=key_prefix)
        assert report.moved == 2
        got = await drain(coordinator, IPA_ID)
        assert [(m, a) for m, a, _ in got] == [("m-text", 1), ("m-held", 2)]

    finally:
        await coordinator.aclose()
        await client.aclose()


async def test_invalid_arguments_raise_migration_error(
    coordination_redis: aioredis.Redis, key_prefix: str, coordinator: RedisMessageCoordinator
) -> None:
    with pytest.raises(MigrationError, match="chunk_size"):
        await migrate_keys(coordination_redis, coordinator, prefix=key_prefix, chunk_size=0)
    cluster: Any = object.__new__(aioredis.RedisCluster)
    with pytest.raises(MigrationError, match="hash tags"):
        await migrate_keys(cluster, coordinator, prefix=key_prefix)


class OldConsumer(CrashingTarget):
    """Restores, then takes the legacy entries away as a still-running original consumer."""

    def __init__(self, inner: RedisMessageCoordinator, redis: aioredis.Redis, key: str) -> None:
        super().__init__(inner, crash_on=0, after=False)
        self.redis = redis
        self.key = key

    async def restore_messages(self, messages: Sequence[PendingMessage]) -> list[bool]:
        flags = await super().restore_messages(messages)
        await self.redis.delete(self.key)
        return flags


async def test_an_entry_taken_meanwhile_is_reported_as_vanished(
    coordination_redis: aioredis.Redis, key_prefix: str, coordinator: RedisMessageCoordinator
) -> None:
    writer = LegacyWriter(coordination_redis, key_prefix)
    await writer.send(WBA, "m-taken")
    key = f"{key_prefix}:sched:world_builder:w1:prio:5"
    report = await migrate_keys(
        coordination_redis, OldConsumer(coordinator, coordination_redis, key), prefix=key_prefix
    )
    (queue,) = report.queues
    assert (queue.moved, queue.vanished) == (0, 1)
    assert not await coordination_redis.hexists(
        f"{key_prefix}:migrate:moved", "world_builder:w1|m-taken"
    )


async def test_a_dry_run_spots_an_id_reused_within_one_queue(
    coordination_redis: aioredis.Redis, key_prefix: str, coordinator: RedisMessageCoordinator
) -> None:
    writer = LegacyWriter(coordination_redis, key_prefix)
    await writer.send(WBA, "m-reused", payload={"v": 1})
    await writer.send(WBA, "m-reused", payload={"v": 2})
    await writer.send(WBA, "m-copy", payload={"v": 3})
    body = await writer.send(WBA, "m-copy2", payload={"v": 4})
    await coordination_redis.rpush(f"{key_prefix}:dlq:world_builder:w1", body)
    plan = await migrate_keys(coordination_redis, coordinator, prefix=key_prefix, dry_run=True)
    done = await migrate_keys(coordination_redis, coordinator, prefix=key_prefix)
    for report in (plan, done):
        (queue,) = report.queues
        assert (queue.ready, queue.dead, queue.duplicates) == (3, 0, 1)
        (kept,) = report.unmovable
        assert "m-reused" in kept.reason


async def test_a_name_the_core_refuses_moves_under_its_rename(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> None:
    writer = LegacyWriter(coordination_redis, key_prefix)
    bad = ("input_processor", "spiel:1")
    await writer.send(bad, "m-renamed")
    await writer.subscribe(bad, "event")
    coordinator = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    renamed = AgentId("input_processor", "spiel-1")
    try:
        refused = await migrate_keys(coordination_redis, coordinator, prefix=key_prefix)
        assert refused.moved == 0
        assert len(refused.unmovable) == 2  # the message and the subscription set
        assert "--rename input_processor:spiel:1=" in refused.unmovable[0].reason
        report = await migrate_keys(
            coordination_redis,
            coordinator,
            prefix=key_prefix,
            renames={"input_processor:spiel:1": renamed},
        )
        assert [(q.legacy, q.queue, q.ready) for q in report.queues] == [
            ("input_processor:spiel:1", "input_processor:spiel-1", 1)
        ]
        assert report.unmovable == []
        got = await drain(coordinator, renamed)
        assert [m for m, _, _ in got] == ["m-renamed"]
        assert await coordinator.subscribers(MessageType.EVENT) == [renamed]
    finally:
        await coordinator.aclose()
