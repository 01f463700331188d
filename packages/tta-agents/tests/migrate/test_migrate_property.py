"""Property: whatever a legacy deployment holds, and wherever a run crashes, a resumed
migration delivers every message exactly once, priority first, in the original order,
with its attempts (Hypothesis, on FakeRedis)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tta_agent_coordination import RedisMessageCoordinator
from tta_agent_coordination.interfaces import CoordinatorLimits
from tta_agent_coordination.models import AgentId, DeadLetter, MessageSubscription, MessageType
from tta_agent_coordination.store import PendingMessage
from tta_agent_coordination.testing.backends import fake_redis
from tta_agents.migrate import migrate_keys

from .conftest import WBA, LegacyWriter, drain

PREFIX = "ao"
QUEUE = AgentId("world_builder", "w1")
BASE_US = 1_700_000_000_000_000  # long past: every scheduled message is due


@dataclass(frozen=True)
class Legacy:
    kind: str  # "ready", "reserved" or "dead"
    priority: int
    attempts: int


class Crash:
    def __init__(self, inner: RedisMessageCoordinator, at: int, after: bool) -> None:
        self.inner, self.at, self.after, self.calls = inner, at, after, 0

    @property
    def config(self) -> CoordinatorLimits:
        return self.inner.config

    async def restore_messages(self, messages: Sequence[PendingMessage]) -> list[bool]:
        self.calls += 1
        if self.calls == self.at and not self.after:
            raise RuntimeError("crash")
        flags = await self.inner.restore_messages(messages)
        if self.calls == self.at:
            raise RuntimeError("crash")
        return flags

    async def subscribe(
        self, agent_id: AgentId, message_types: list[MessageType]
    ) -> MessageSubscription:
        return await self.inner.subscribe(agent_id, message_types)

    async def subscribers(self, message_type: MessageType) -> list[AgentId]:
        return await self.inner.subscribers(message_type)


messages_st = st.lists(
    st.builds(
        Legacy,
        kind=st.sampled_from(["ready", "ready", "reserved", "dead"]),
        priority=st.sampled_from([1, 5, 9]),
        attempts=st.integers(0, 2),
    ),
    min_size=1,
    max_size=12,
)


async def _write(writer: LegacyWriter, legacy: list[Legacy]) -> None:
    redis, agent = writer.redis, writer.agent(WBA)
    for i, m in enumerate(legacy):
        body = writer.payload(WBA, f"msg-{i:03d}", priority=m.priority, attempts=m.attempts)
        if m.kind == "ready":
            key = f"{PREFIX}:sched:{agent}:prio:{m.priority}"
            await redis.zadd(key, {body: BASE_US + i})
        elif m.kind == "reserved":
            await redis.hset(f"{PREFIX}:reserved:{agent}", f"res_{i}", body)
            await redis.zadd(f"{PREFIX}:reserved_deadlines:{agent}", {f"res_{i}": BASE_US + i})
        else:
            await redis.rpush(f"{PREFIX}:dlq:{agent}", body)


def _expected(legacy: list[Legacy]) -> list[tuple[str, int]]:
    order: list[tuple[str, int]] = []
    for priority in (9, 5, 1):
        for kind, extra in (("ready", 1), ("reserved", 2)):
            order += [
                (f"msg-{i:03d}", m.attempts + extra)
                for i, m in enumerate(legacy)
                if m.kind == kind and m.priority == priority
            ]
    return order


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    legacy=messages_st,
    chunk_size=st.integers(1, 4),
    crash_at=st.integers(0, 6),
    after=st.booleans(),
)
async def test_any_deployment_any_crash_moves_every_message_once(
    legacy: list[Legacy], chunk_size: int, crash_at: int, after: bool
) -> None:
    redis = fake_redis()
    coordinator = RedisMessageCoordinator(redis, key_prefix=PREFIX)
    try:
        await _write(LegacyWriter(redis, PREFIX), legacy)
        if crash_at:
            with contextlib.suppress(RuntimeError):  # the run crashed, or finished first
                crashing = Crash(coordinator, crash_at, after)
                await migrate_keys(redis, crashing, prefix=PREFIX, chunk_size=chunk_size)
        await migrate_keys(redis, coordinator, prefix=PREFIX, chunk_size=chunk_size)
        assert (await migrate_keys(redis, coordinator, prefix=PREFIX)).moved == 0
        got = await drain(coordinator, QUEUE)
        assert [(m, a) for m, a, _ in got] == _expected(legacy)
        dead = await coordinator.dead_letters(QUEUE)
        assert sorted(d.message_id for d in dead if isinstance(d, DeadLetter)) == [
            f"msg-{i:03d}" for i, m in enumerate(legacy) if m.kind == "dead"
        ]
        assert await redis.hlen(f"{PREFIX}:migrate:moved") == len(legacy)
    finally:
        await coordinator.aclose()
        await redis.aclose()
