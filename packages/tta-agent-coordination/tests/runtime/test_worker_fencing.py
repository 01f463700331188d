"""Fencing: a worker leases only while its registration is known to be live (issue 23, 5).

The old owner of an agent is frozen (its event loop blocked past the heartbeat TTL) or
its heartbeats are held back, and another worker takes the agent over. The old owner
must not handle anything the new one could also be handling, and must stop within one
heartbeat interval of learning it was replaced. Maintenance runs only every 60 s here,
so it cannot be what stops the old owner.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tta_agent_coordination import AgentMessage, MessageContext, MessageType, RedisAgentRegistry
from tta_agent_coordination.runtime.worker import WorkerState

from .conftest import CLIENT, SERVER, eventually

TTL_S = 1.0
INTERVAL_S = TTL_S / 3
SLACK_S = 0.5
"""Scheduling slack of a loaded CI machine (as in tests/faults)."""
MESSAGES = 150


class HeartbeatValve:
    """A CallGuard that holds ``registry_heartbeat`` calls back while it is closed."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()

    async def run(
        self, operation: str, fn: Callable[[], Awaitable[Any]], *, retry: bool = False
    ) -> Any:
        if operation == "registry_heartbeat":
            await self.open.wait()
        return await fn()


class Ledger:
    """When each worker started each handler (event-loop time)."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, str, float]] = []

    def handler(self, name: str) -> Callable[[MessageContext[Any]], Awaitable[None]]:
        async def handle(ctx: MessageContext[Any]) -> None:
            self.starts.append((name, ctx.message.message_id, asyncio.get_running_loop().time()))
            await asyncio.sleep(0.01)

        return handle

    def by(self, name: str, after: float = float("-inf")) -> list[str]:
        return [m for w, m, t in self.starts if w == name and t > after]

    def ids(self) -> set[str]:
        return {m for _, m, _ in self.starts}


async def send_many(coordinator, count: int) -> set[str]:
    messages = [
        AgentMessage(
            message_id=f"fence-{i:04d}",
            sender=CLIENT,
            recipient=SERVER,
            message_type=MessageType.EVENT,
            payload={"n": i},
        )
        for i in range(count)
    ]
    results = await coordinator.send_many(messages)
    assert all(r.delivered for r in results)
    return {m.message_id for m in messages}


def freeze(seconds: float) -> None:
    """Block the event loop, as SIGSTOP or a long GC pause would."""
    time.sleep(seconds)


def registry(redis, key_prefix, coordinator, guard: Any = None) -> RedisAgentRegistry:
    options: dict[str, Any] = {"guard": guard} if guard is not None else {}
    return RedisAgentRegistry(
        redis, key_prefix=key_prefix, heartbeat_ttl_s=TTL_S, coordinator=coordinator, **options
    )


async def test_a_frozen_owner_leases_nothing_once_it_resumes_and_stops_when_replaced(
    coordination_redis, key_prefix, coordinator, make_worker
):
    valve = HeartbeatValve()
    registry_old = registry(coordination_redis, key_prefix, coordinator, valve)
    registry_new = registry(coordination_redis, key_prefix, coordinator)
    ledger = Ledger()
    loop = asyncio.get_running_loop()
    old = make_worker(registry=registry_old, maintenance_interval=60.0, concurrency=2)
    new = make_worker(registry=registry_new, maintenance_interval=60.0, concurrency=2)
    old.add_handler(ledger.handler("old"))
    new.add_handler(ledger.handler("new"))
    try:
        sent = await send_many(coordinator, MESSAGES)
        await old.start()
        await eventually(lambda: len(ledger.by("old")) >= 5)
        # The old owner's process freezes past its TTL. Its first heartbeat after it
        # resumes is held back until the new owner has taken over: the worst order.
        valve.open.clear()
        # Counted, not timed: a handler spawned just before the freeze starts after it.
        leased_before = old.stats.received
        freeze(TTL_S + 0.3)
        resumed = loop.time()
        await new.start()  # the registration expired: taken over without takeover=True
        taken_over = loop.time()
        await asyncio.sleep(0.3)  # the old owner runs, unverified, alongside the new one
        assert old.state is WorkerState.RUNNING
        assert old.stats.received == leased_before
        valve.open.set()  # its heartbeat now learns that it was replaced
        opened = loop.time()
        await eventually(lambda: old.state is WorkerState.STOPPED, timeout=INTERVAL_S + SLACK_S + 3)
        assert old.stop_reason == "registration lost"
        await eventually(lambda: ledger.ids() >= sent, timeout=20)
    finally:
        await old.stop(grace_period=0)
        await new.stop(grace_period=0)
        await registry_old.aclose()
        await registry_new.aclose()
    leased_after = old.stats.received - leased_before
    assert leased_after == 0, f"split brain: the old owner leased {leased_after} after resuming"
    assert taken_over >= resumed
    assert opened - resumed < TTL_S * 3
    # The old owner is gone; the new one holds the id.
    assert registry_old.held() == []


async def test_heartbeats_held_back_stop_leasing_before_the_registration_can_expire(
    coordination_redis, key_prefix, coordinator, make_worker
):
    valve = HeartbeatValve()
    registry_old = registry(coordination_redis, key_prefix, coordinator, valve)
    registry_new = registry(coordination_redis, key_prefix, coordinator)
    ledger = Ledger()
    loop = asyncio.get_running_loop()
    old = make_worker(registry=registry_old, maintenance_interval=60.0, concurrency=2)
    new = make_worker(registry=registry_new, maintenance_interval=60.0, concurrency=2)
    old.add_handler(ledger.handler("old"))
    new.add_handler(ledger.handler("new"))
    try:
        sent = await send_many(coordinator, MESSAGES)
        await old.start()
        await eventually(lambda: len(ledger.by("old")) >= 5)
        valve.open.clear()  # no renewal reaches Redis from now on
        cut = loop.time()

        async def expired() -> bool:
            record = await registry_new.get(SERVER)
            return record is None or not record.alive

        await eventually(expired, timeout=TTL_S + SLACK_S + 2)
        expired_at = loop.time()
        await new.start()
        await asyncio.sleep(0.5)
        valve.open.set()
        opened = loop.time()
        await eventually(lambda: old.state is WorkerState.STOPPED, timeout=INTERVAL_S + SLACK_S + 3)
        stopped_after = loop.time() - opened
        assert old.stop_reason == "registration lost"
        await eventually(lambda: ledger.ids() >= sent, timeout=20)
    finally:
        await old.stop(grace_period=0)
        await new.stop(grace_period=0)
        await registry_old.aclose()
        await registry_new.aclose()
    # The old owner stopped leasing within the TTL of its last renewal, before Redis
    # could let anyone else take the id over.
    assert ledger.by("old", after=cut + TTL_S) == []
    assert ledger.by("old", after=expired_at) == []
    assert stopped_after <= INTERVAL_S + SLACK_S + 0.2  # + one blocking read


async def test_a_live_takeover_stops_the_old_owner_within_one_heartbeat_interval(
    coordination_redis, key_prefix, coordinator, make_worker
):
    registry_old = registry(coordination_redis, key_prefix, coordinator)
    registry_new = registry(coordination_redis, key_prefix, coordinator)
    ledger = Ledger()
    loop = asyncio.get_running_loop()
    old = make_worker(registry=registry_old, maintenance_interval=60.0, concurrency=2)
    new = make_worker(
        registry=registry_new, maintenance_interval=60.0, concurrency=2, takeover=True
    )
    old.add_handler(ledger.handler("old"))
    new.add_handler(ledger.handler("new"))
    try:
        sent = await send_many(coordinator, MESSAGES)
        await old.start()
        await eventually(lambda: len(ledger.by("old")) >= 5)
        await new.start()
        taken_over = loop.time()
        await eventually(lambda: old.state is WorkerState.STOPPED, timeout=INTERVAL_S + SLACK_S + 3)
        assert old.stop_reason == "registration lost"
        await eventually(lambda: ledger.ids() >= sent, timeout=20)
    finally:
        await old.stop(grace_period=0)
        await new.stop(grace_period=0)
        await registry_old.aclose()
        await registry_new.aclose()
    last_old = max((t for w, _, t in ledger.starts if w == "old"), default=taken_over)
    assert last_old - taken_over <= INTERVAL_S + SLACK_S


async def test_a_stall_nobody_exploited_is_verified_and_the_worker_goes_on(
    coordination_redis, key_prefix, coordinator, make_worker
):
    registry_only = registry(coordination_redis, key_prefix, coordinator)
    ledger = Ledger()
    loop = asyncio.get_running_loop()
    worker = make_worker(registry=registry_only, maintenance_interval=60.0, concurrency=2)
    worker.add_handler(ledger.handler("only"))
    try:
        sent = await send_many(coordinator, MESSAGES)
        await worker.start()
        await eventually(lambda: len(ledger.by("only")) >= 5)
        freeze(TTL_S + 0.3)
        resumed = loop.time()
        await eventually(lambda: ledger.ids() >= sent, timeout=20)
        assert worker.state is WorkerState.RUNNING
        assert ledger.by("only", after=resumed)  # it went on after verifying
        assert registry_only.held() == [SERVER]  # registered again after the expiry
    finally:
        await worker.stop(grace_period=0)
        await registry_only.aclose()
