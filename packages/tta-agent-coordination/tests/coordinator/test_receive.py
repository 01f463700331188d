import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import FailureType, MessagePriority
from tta_agent_coordination.observability.metrics import MessageMetrics
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.redis.core import CoordinatorCore

from .conftest import RECIPIENT, SENDER, make_message


async def test_empty_queue_returns_none_at_once(coordinator):
    assert await coordinator.receive(RECIPIENT) is None
    assert await coordinator.receive_batch(RECIPIENT, 10) == []


async def test_strict_priority_then_fifo(coordinator):
    order = [
        (0, MessagePriority.LOW),
        (1, MessagePriority.NORMAL),
        (2, MessagePriority.HIGH),
        (3, MessagePriority.LOW),
        (4, MessagePriority.HIGH),
        (5, MessagePriority.NORMAL),
    ]
    for n, priority in order:
        await coordinator.send_message(SENDER, RECIPIENT, make_message(n, priority=priority))
    got = []
    while (item := await coordinator.receive(RECIPIENT)) is not None:
        got.append(item.message.payload["n"])
    assert got == [2, 4, 1, 5, 0, 3]


async def test_receive_batch_keeps_delivery_order_across_priorities(coordinator):
    for n, priority in [
        (0, MessagePriority.LOW),
        (1, MessagePriority.HIGH),
        (2, MessagePriority.NORMAL),
    ]:
        await coordinator.send_message(SENDER, RECIPIENT, make_message(n, priority=priority))
    batch = await coordinator.receive_batch(RECIPIENT, 2)
    assert [b.message.payload["n"] for b in batch] == [1, 2]
    rest = await coordinator.receive_batch(RECIPIENT, 10)
    assert [b.message.payload["n"] for b in rest] == [0]
    assert len({b.token for b in batch + rest}) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"count": 0}, "count"),
        ({"count": 1001}, "count"),
        ({"count": 1, "visibility_timeout": 0}, "visibility_timeout"),
        ({"count": 1, "block": -1}, "block"),
    ],
)
async def test_receive_rejects_bad_arguments(coordinator, kwargs, match):
    options = dict(kwargs)
    count = options.pop("count")
    with pytest.raises(ConfigurationError, match=match):
        await coordinator.receive_batch(RECIPIENT, count, **options)


async def test_block_waits_for_a_message_without_polling(coordinator):
    async def send_later():
        await asyncio.sleep(0.3)
        await coordinator.send_message(SENDER, RECIPIENT, make_message(1))

    task = asyncio.create_task(send_later())
    started = time.monotonic()
    got = await coordinator.receive(RECIPIENT, block=5)
    elapsed = time.monotonic() - started
    await task
    assert got is not None
    assert got.message.payload == {"n": 1}
    assert 0.2 < elapsed < 3


async def test_block_times_out_with_none(coordinator):
    started = time.monotonic()
    assert await coordinator.receive(RECIPIENT, block=0.3) is None
    assert time.monotonic() - started >= 0.3


async def test_an_idle_blocking_receive_runs_its_script_once(coordinator, monkeypatch):
    # Nothing arrives and nothing falls due: the script that opened the wait is the only
    # one (an idle worker, which receives again at once, costs one script per poll).
    run = CoordinatorCore.run
    calls: list[str] = []

    def counting(self, operation, call, **kwargs):
        calls.append(operation)
        return run(self, operation, call, **kwargs)

    monkeypatch.setattr(CoordinatorCore, "run", counting)
    assert await coordinator.receive_batch(RECIPIENT, 10, block=0.3) == []
    assert calls == ["receive"]


async def test_block_wakes_for_a_due_retry(coordinator):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    first = await coordinator.receive(RECIPIENT)
    await coordinator.nack(RECIPIENT, first.token, error="try again")  # due in 0.2 s
    got = await coordinator.receive(RECIPIENT, block=5)
    assert got is not None
    assert got.attempts == 2
    assert got.queue_message.last_error == "try again"


async def test_concurrent_blocked_consumers_each_get_one_message(coordinator):
    consumers = [asyncio.create_task(coordinator.receive(RECIPIENT, block=5)) for _ in range(4)]
    await asyncio.sleep(0.1)
    for n in range(4):
        await coordinator.send_message(SENDER, RECIPIENT, make_message(n))
    got = await asyncio.gather(*consumers)
    assert sorted(g.message.payload["n"] for g in got) == [0, 1, 2, 3]


async def test_a_message_is_leased_to_one_consumer_at_a_time(coordinator):
    for n in range(60):
        await coordinator.send_message(SENDER, RECIPIENT, make_message(n))

    async def consume() -> list[str]:
        mine = []
        while (item := await coordinator.receive(RECIPIENT, visibility_timeout=30)) is not None:
            mine.append(item.message.message_id)
        return mine

    results = await asyncio.gather(*(consume() for _ in range(8)))
    all_ids = [m for r in results for m in r]
    assert len(all_ids) == 60
    assert len(set(all_ids)) == 60
    stats = await coordinator.queue_stats(RECIPIENT)
    assert stats.leased == 60
    assert sum(stats.ready.values()) == 0


async def test_lease_hides_the_message_until_it_expires(coordinator):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    first = await coordinator.receive(RECIPIENT, visibility_timeout=0.3)
    assert await coordinator.receive(RECIPIENT) is None
    await asyncio.sleep(0.4)
    second = await coordinator.receive(RECIPIENT)
    assert second is not None
    assert second.message.message_id == first.message.message_id
    assert second.attempts == 2
    assert second.queue_message.last_error == "lease expired"
    assert second.token != first.token
    # the old holder can no longer settle the new delivery
    assert not await coordinator.ack(RECIPIENT, first.token)
    assert not await coordinator.nack(RECIPIENT, first.token)
    assert await coordinator.ack(RECIPIENT, second.token)


async def test_extend_lease_keeps_the_message_hidden(coordinator):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    got = await coordinator.receive(RECIPIENT, visibility_timeout=0.3)
    assert await coordinator.extend_lease(RECIPIENT, got.token, 5)
    await asyncio.sleep(0.4)
    assert await coordinator.receive(RECIPIENT) is None
    assert await coordinator.ack(RECIPIENT, got.token)
    assert not await coordinator.extend_lease(RECIPIENT, got.token, 5)
    assert not await coordinator.extend_lease(RECIPIENT, "garbage", 5)
    with pytest.raises(ConfigurationError):
        await coordinator.extend_lease(RECIPIENT, got.token, 0)


async def test_expired_message_is_dead_lettered_not_delivered(coordinator, metrics):
    past = datetime.now(UTC) - timedelta(seconds=1)
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1, expires_at=past))
    await coordinator.send_message(SENDER, RECIPIENT, make_message(2))
    got = await coordinator.receive(RECIPIENT)
    assert got.message.payload == {"n": 2}
    dead = await coordinator.dead_letters(RECIPIENT)
    assert [d.message.payload for d in dead] == [{"n": 1}]
    assert dead[0].failure_type is FailureType.TIMEOUT
    assert dead[0].last_error == "expired before delivery"
    # An expiry is counted apart from permanent failures.
    assert metrics.total("expired") == 1
    assert metrics.total("permanent") == 0


class MetricsWithoutExpired:
    """A third-party metrics class written before ``inc_expired`` existed."""

    def __init__(self) -> None:
        self.permanent: list[tuple[str, int]] = []

    def inc_permanent(self, queue: str, n: int = 1) -> None:
        self.permanent.append((queue, n))

    def inc_delivered_ok(self, queue: str, n: int = 1) -> None: ...
    def inc_delivered_error(self, queue: str, n: int = 1) -> None: ...
    def inc_received(self, queue: str, n: int = 1) -> None: ...
    def inc_acked(self, queue: str, n: int = 1) -> None: ...
    def inc_nacks(self, queue: str, n: int = 1) -> None: ...
    def inc_retries_scheduled(self, queue: str, n: int = 1) -> None: ...
    def inc_recovered(self, queue: str, n: int = 1) -> None: ...
    def set_queue_depth(self, queue: str, depth: int) -> None: ...
    def set_dead_letters(self, queue: str, count: int) -> None: ...


async def test_metrics_without_inc_expired_count_expiries_as_permanent(
    coordination_redis, key_prefix
):
    metrics = MetricsWithoutExpired()
    assert isinstance(metrics, MessageMetrics)
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, metrics=metrics)
    past = datetime.now(UTC) - timedelta(seconds=1)
    await coord.send_message(SENDER, RECIPIENT, make_message(1, expires_at=past))
    assert await coord.receive(RECIPIENT) is None
    assert metrics.permanent == [(str(RECIPIENT), 1)]


async def test_expired_high_message_does_not_let_lower_priority_jump_ahead(coordinator):
    past = datetime.now(UTC) - timedelta(seconds=1)
    await coordinator.send_message(SENDER, RECIPIENT, make_message(0, priority=MessagePriority.LOW))
    await coordinator.send_message(
        SENDER, RECIPIENT, make_message(1, priority=MessagePriority.HIGH, expires_at=past)
    )
    await coordinator.send_message(
        SENDER, RECIPIENT, make_message(2, priority=MessagePriority.HIGH)
    )
    got = await coordinator.receive(RECIPIENT)
    assert got.message.payload == {"n": 2}


async def test_undecodable_entry_is_dead_lettered_with_the_reason(coordinator, coordination_redis):
    keys = coordinator.keys.queue(RECIPIENT)
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    # something other than this library wrote into the queue
    await coordination_redis.xadd(
        keys.ready_for(MessagePriority.NORMAL),
        {"i": "foreign-1", "m": "not json", "a": 0, "e": "", "x": 0, "t": 0},
    )
    first = await coordinator.receive_batch(RECIPIENT, 5)
    assert [r.message.payload for r in first] == [{"n": 1}]
    stats = await coordinator.queue_stats(RECIPIENT)
    assert stats.dead == 1
    assert stats.leased == 1
    raw = await coordination_redis.xrange(keys.dlq)
    assert b"undecodable" in raw[0][1][b"e"]
