"""The registry tells its store which agents are alive (``MessageStore.record_seen``)."""

import asyncio
from collections.abc import Sequence

import pytest

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.store import (
    AgentEvent,
    MessageEvent,
    MessageStore,
    RestoreTarget,
    StoreUnavailableError,
)

A = AgentId("worker", "a")
B = AgentId("worker", "b")


class SeenStore(MessageStore):
    """Records what the registry hands it; ``record_seen`` can fail or hang on demand."""

    def __init__(self) -> None:
        self.seen: list[list[AgentId]] = []
        self.agents: list[AgentEvent] = []
        self.fail = False
        self.hang: asyncio.Event | None = None

    async def record(self, events: Sequence[MessageEvent]) -> None:
        pass

    async def record_agents(self, events: Sequence[AgentEvent]) -> None:
        self.agents.extend(events)

    async def restore(self, coordinator: RestoreTarget) -> int:
        return 0

    async def record_seen(self, agent_ids: Sequence[AgentId]) -> None:
        if self.hang is not None:
            await self.hang.wait()
        if self.fail:
            raise StoreUnavailableError("the store is down")
        self.seen.append(list(agent_ids))


class OldStore(MessageStore):
    """A store written before ``record_seen`` existed."""

    async def record(self, events: Sequence[MessageEvent]) -> None:
        pass

    async def record_agents(self, events: Sequence[AgentEvent]) -> None:
        pass

    async def restore(self, coordinator: RestoreTarget) -> int:
        return 0


async def test_heartbeats_report_the_live_agents_at_the_interval(make_registry):
    store = SeenStore()
    registry = make_registry(
        heartbeat_ttl_s=0.6, heartbeat_interval_s=0.05, store=store, store_seen_interval_s=0.2
    )
    await registry.register_id(A)
    await registry.register_id(B)
    registry.start_heartbeats()
    await asyncio.sleep(0.75)
    await registry.stop_heartbeats()
    # Every 0.2 s over 0.75 s: three reports, not one per heartbeat (~15 beats).
    assert 2 <= len(store.seen) <= 4, store.seen
    assert all(sorted(ids, key=str) == [A, B] for ids in store.seen)


async def test_a_deregistered_agent_is_no_longer_reported(make_registry):
    store = SeenStore()
    registry = make_registry(
        heartbeat_ttl_s=0.6, heartbeat_interval_s=0.05, store=store, store_seen_interval_s=0.1
    )
    await registry.register_id(A)
    await registry.register_id(B)
    registry.start_heartbeats()
    await registry.deregister(B)
    store.seen.clear()
    await asyncio.sleep(0.35)
    assert store.seen
    assert all(ids == [A] for ids in store.seen)


async def test_an_agent_whose_renewals_fail_is_not_reported_past_its_ttl(make_registry):
    from .conftest import FlakyGuard

    store = SeenStore()
    guard = FlakyGuard("registry_heartbeat", failures=10_000)
    registry = make_registry(
        heartbeat_ttl_s=0.3,
        heartbeat_interval_s=0.05,
        store=store,
        store_seen_interval_s=0.05,
        guard=guard,
    )
    await registry.register_id(A)  # renewed once, by the registration itself
    registry.start_heartbeats()
    await asyncio.sleep(0.2)
    assert store.seen  # within the TTL of the registration
    assert store.seen[0] == [A]
    await asyncio.sleep(0.3)
    store.seen.clear()
    await asyncio.sleep(0.3)
    assert guard.calls > 5  # the heartbeats keep trying, and failing
    assert store.seen == []  # so the agent is not claimed to be alive


async def test_a_failing_store_never_stops_the_heartbeats(make_registry):
    store = SeenStore()
    store.fail = True
    registry = make_registry(
        heartbeat_ttl_s=0.3, heartbeat_interval_s=0.05, store=store, store_seen_interval_s=0.05
    )
    await registry.register_id(A)
    registry.start_heartbeats()
    await asyncio.sleep(0.8)  # well past the TTL
    assert (await registry.get(A)).alive
    assert await registry.reap_expired() == []
    store.fail = False
    await asyncio.sleep(0.2)
    assert store.seen  # recovered on its own


async def test_a_hanging_store_never_delays_heartbeats_nor_piles_up_calls(make_registry):
    store = SeenStore()
    store.hang = asyncio.Event()
    calls = 0
    original = store.record_seen

    async def counting(agent_ids: Sequence[AgentId]) -> None:
        nonlocal calls
        calls += 1
        await original(agent_ids)

    store.record_seen = counting  # type: ignore[method-assign]
    registry = make_registry(
        heartbeat_ttl_s=0.3, heartbeat_interval_s=0.05, store=store, store_seen_interval_s=0.05
    )
    await registry.register_id(A)
    registry.start_heartbeats()
    await asyncio.sleep(0.8)
    assert (await registry.get(A)).alive
    assert calls == 1  # later rounds are skipped while the first one hangs
    store.hang.set()
    await asyncio.sleep(0.2)
    assert store.seen
    await registry.stop_heartbeats()  # cancels a report in flight, if any


async def test_zero_interval_never_reports(make_registry):
    store = SeenStore()
    registry = make_registry(
        heartbeat_ttl_s=0.3, heartbeat_interval_s=0.05, store=store, store_seen_interval_s=0
    )
    await registry.register_id(A)
    registry.start_heartbeats()
    await asyncio.sleep(0.3)
    assert store.seen == []


async def test_a_store_without_record_seen_still_works(make_registry):
    registry = make_registry(
        heartbeat_ttl_s=0.3, heartbeat_interval_s=0.05, store=OldStore(), store_seen_interval_s=0.05
    )
    await registry.register_id(A)
    registry.start_heartbeats()
    await asyncio.sleep(0.3)
    assert (await registry.get(A)).alive


def test_a_negative_interval_is_refused(coordination_redis):
    from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry

    with pytest.raises(ConfigurationError, match="store_seen_interval_s"):
        RedisAgentRegistry(coordination_redis, store_seen_interval_s=-1)
