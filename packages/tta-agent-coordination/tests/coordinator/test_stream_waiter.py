"""``StreamWaiter``: one shared blocked XREAD for many waiters (issue 23 item 9, issue 14 §3).

Every test runs on FakeRedis and on the real Redis. Speed and CPU targets are measured
precisely by ``scripts/bench_idle.py``; the bounds here are generous on purpose.
"""

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from tta_agent_coordination.errors import ConfigurationError, CoordinationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.stream_waiter import StreamWaiter, parse_id, slot_group

LINGER_S = 0.05


def _streams(prefix: str, n: int) -> list[str]:
    keys = KeySpace(prefix)
    return [keys.queue(AgentId("waiting", f"w{i}")).ready[1] for i in range(n)]


def _in_use(client: aioredis.Redis) -> int:
    pool: Any = client.connection_pool
    return len(pool._in_use_connections)


def _reader_tasks() -> list[asyncio.Task[Any]]:
    return [
        t for t in asyncio.all_tasks() if t.get_name().startswith("stream-waiter") and not t.done()
    ]


async def _settled(waiter: StreamWaiter, client: aioredis.Redis) -> None:
    """Wait (bounded) until the waiter holds no reader, task or connection."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        stats = waiter.stats
        if not (stats.waiters or stats.readers or stats.streams or _reader_tasks()):
            break
        await asyncio.sleep(0.01)
    stats = waiter.stats
    assert (stats.waiters, stats.readers, stats.streams) == (0, 0, 0)
    assert _reader_tasks() == []
    assert _in_use(client) == 0


@pytest.fixture
async def waiter(coordination_redis):
    w = StreamWaiter(coordination_redis, linger_s=LINGER_S)
    yield w
    await w.aclose()


async def test_wakes_only_the_waiter_of_the_stream(coordination_redis, key_prefix, waiter):
    a, b = _streams(key_prefix, 2)
    wait_a = asyncio.create_task(waiter.wait({a: "0-0"}, 5))
    wait_b = asyncio.create_task(waiter.wait({b: "0-0"}, 5))
    await asyncio.sleep(0.05)
    await coordination_redis.xadd(a, {"x": "1"})
    assert await asyncio.wait_for(wait_a, 2) == {a}
    await asyncio.sleep(0.1)
    assert not wait_b.done()
    await coordination_redis.xadd(b, {"x": "1"})
    assert await asyncio.wait_for(wait_b, 2) == {b}
    await _settled(waiter, coordination_redis)


async def test_an_entry_added_before_the_wait_wakes_it_at_once(
    coordination_redis, key_prefix, waiter
):
    (a,) = _streams(key_prefix, 1)
    first = (await coordination_redis.xadd(a, {"x": "1"})).decode()
    await coordination_redis.xadd(a, {"x": "2"})
    started = time.monotonic()
    assert await waiter.wait({a: first}, 5) == {a}
    assert time.monotonic() - started < 1


async def test_an_entry_the_waiter_has_seen_does_not_wake_it(
    coordination_redis, key_prefix, waiter
):
    a, b = _streams(key_prefix, 2)
    await coordination_redis.xadd(a, {"x": "1"})
    last = (await coordination_redis.xadd(a, {"x": "2"})).decode()
    early = asyncio.create_task(waiter.wait({a: "0-0"}, 5))  # keeps the read from 0-0
    late = asyncio.create_task(waiter.wait({a: last, b: "0-0"}, 5))
    assert await asyncio.wait_for(early, 2) == {a}
    await asyncio.sleep(0.1)
    assert not late.done()
    await coordination_redis.xadd(b, {"x": "1"})
    assert await asyncio.wait_for(late, 2) == {b}


async def test_deadline_returns_empty(coordination_redis, key_prefix, waiter):
    (a,) = _streams(key_prefix, 1)
    started = time.monotonic()
    assert await waiter.wait({a: "0-0"}, 0.2) == set()
    assert 0.15 < time.monotonic() - started < 1.5
    assert await waiter.wait({a: "0-0"}, 0) == set()
    await _settled(waiter, coordination_redis)


async def test_a_joining_waiter_is_covered_without_waiting_for_the_block(
    coordination_redis, key_prefix
):
    # The shared read blocks for 30 s; a second waiter must still wake promptly.
    waiter = StreamWaiter(coordination_redis, max_block_s=30, linger_s=LINGER_S)
    try:
        a, b = _streams(key_prefix, 2)
        first = asyncio.create_task(waiter.wait({a: "0-0"}, 10))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(waiter.wait({b: "0-0"}, 10))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await coordination_redis.xadd(b, {"x": "1"})
        assert await asyncio.wait_for(second, 2) == {b}
        assert time.monotonic() - started < 0.5
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
    finally:
        await waiter.aclose()


async def test_a_kick_sent_before_the_read_blocks_is_sent_again(
    coordination_redis, key_prefix, monkeypatch
):
    # The reader marks itself blocked just before it sends its XREAD; a joiner's
    # CLIENT UNBLOCK can reach Redis first and find nothing to unblock. Here the send is
    # held back 100 ms, so the first kick always misses: the kick must try again, or
    # the joiner's stream waits out the whole 30 s read.
    from tta_agent_coordination.redis import stream_waiter

    xread = stream_waiter._xread

    async def late_xread(conn: Any, data: bytes, block_s: float) -> Any:
        await asyncio.sleep(0.1)
        return await xread(conn, data, block_s)

    monkeypatch.setattr(stream_waiter, "_xread", late_xread)
    waiter = StreamWaiter(coordination_redis, max_block_s=30, linger_s=LINGER_S)
    try:
        a, b = _streams(key_prefix, 2)
        first = asyncio.create_task(waiter.wait({a: "0-0"}, 10))
        for _ in range(300):  # the reader has connected and is about to send its read
            if any(r.blocked for r in waiter._readers):  # pyright: ignore[reportPrivateUsage]
                break
            await asyncio.sleep(0.01)
        second = asyncio.create_task(waiter.wait({b: "0-0"}, 10))
        await asyncio.sleep(0.4)  # the first read is on; the kick's retries ended it
        started = time.monotonic()
        await coordination_redis.xadd(b, {"x": "1"})
        assert await asyncio.wait_for(second, 5) == {b}
        assert time.monotonic() - started < 2.0
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
    finally:
        await waiter.aclose()


@pytest.mark.parametrize("delay", [0, 0.0001, 0.001, 0.003, 0.01, 0.03])
async def test_cancelled_at_any_point_leaves_nothing_behind(
    coordination_redis, key_prefix, waiter, delay
):
    streams = _streams(key_prefix, 6)
    for round_ in range(3):
        stayers = [asyncio.create_task(waiter.wait({s: "0-0"}, 5)) for s in streams[:3]]
        if round_:
            await asyncio.sleep(delay)  # the reader may be blocked, or mid-start
        leaving = [
            asyncio.create_task(waiter.wait({s: "0-0", streams[0]: "0-0"}, 5)) for s in streams[3:]
        ]
        await asyncio.sleep(delay)
        for task in leaving:
            task.cancel()
        results = await asyncio.gather(*leaving, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError | set) for r in results)
        for s in streams[:3]:
            await coordination_redis.xadd(s, {"x": "1"})
        assert all(await asyncio.wait_for(asyncio.gather(*stayers), 3))
        await coordination_redis.delete(*streams)
    await _settled(waiter, coordination_redis)


async def test_aclose_fails_waiters_and_releases_the_connection(coordination_redis, key_prefix):
    waiter = StreamWaiter(coordination_redis)
    (a,) = _streams(key_prefix, 1)
    task = asyncio.create_task(waiter.wait({a: "0-0"}, 10))
    await asyncio.sleep(0.05)
    assert waiter.stats.readers == 1
    await waiter.aclose()
    with pytest.raises(CoordinationError):
        await task
    with pytest.raises(CoordinationError):
        await waiter.wait({a: "0-0"}, 1)
    assert _reader_tasks() == []
    assert _in_use(coordination_redis) == 0


async def test_a_failing_read_wakes_waiters_with_the_error_and_backs_off(
    coordination_redis, key_prefix
):
    calls: list[float] = []

    async def failing_run(operation: str, fn: Any) -> Any:
        calls.append(time.monotonic())
        raise CoordinationError("redis is down")

    waiter = StreamWaiter(coordination_redis, run=failing_run, linger_s=LINGER_S)
    (a,) = _streams(key_prefix, 1)
    try:
        with pytest.raises(CoordinationError, match="redis is down"):
            await waiter.wait({a: "0-0"}, 2)
        # A caller that waits again at once meets the reader's back-off, not a hot loop.
        waits = errors = 0
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            waits += 1
            try:
                await waiter.wait({a: "0-0"}, 0.2)
            except CoordinationError:
                errors += 1
    finally:
        await waiter.aclose()
    assert errors >= 2, "the reader stopped retrying"
    assert len(calls) <= 8, f"{len(calls)} reads in ~1 s: no back-off"
    assert waits <= 12


def _queue_streams(prefix: str, n: int) -> list[dict[str, str]]:
    """What ``n`` blocking receives wait on: each queue's three ready streams and wake."""
    keys = KeySpace(prefix)
    return [
        dict.fromkeys((*q.ready, q.wake), "0-0")
        for q in (keys.queue(AgentId("waiting", f"w{i}")) for i in range(n))
    ]


async def test_1000_idle_waiters_share_one_connection_and_cost_no_cpu(
    coordination_redis, key_prefix
):
    # As 1,000 blocking receives wait: four streams each, 4,000 in all, on a standalone
    # server (FakeRedis, the real one): one read, one connection (DEFAULT_MAX_KEYS_PER_READ).
    waiter = StreamWaiter(coordination_redis, linger_s=LINGER_S)
    waits = _queue_streams(key_prefix, 1000)
    tasks = [asyncio.create_task(waiter.wait(streams, 30)) for streams in waits]
    try:
        for _ in range(300):  # bounded: a loaded machine registers 1,000 waits slower
            if waiter.stats.waiters == 1000 and waiter.stats.streams == 4000:
                break
            await asyncio.sleep(0.05)
        assert waiter.stats.waiters == 1000
        assert waiter.stats.streams == 4000
        assert waiter.stats.readers == 1
        assert _in_use(coordination_redis) <= 1
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(2)
        share = (time.process_time() - cpu) / (time.monotonic() - wall)
        assert share < 0.05, f"1,000 idle waiters used {share:.1%} of a core"
        assert waiter.stats.readers == 1
        assert _in_use(coordination_redis) <= 1
        woken = list(waits[500])[1]  # the NORMAL ready stream of the 501st queue
        await coordination_redis.xadd(woken, {"x": "1"})
        assert await asyncio.wait_for(tasks[500], 5) == {woken}
        assert sum(t.done() for t in tasks) == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await _settled(waiter, coordination_redis)
    await waiter.aclose()


async def test_streams_past_the_limit_open_another_reader(coordination_redis, key_prefix):
    waiter = StreamWaiter(coordination_redis, linger_s=LINGER_S, max_keys_per_read=8)
    waits = _queue_streams(key_prefix, 5)  # 20 streams, 8 per read: three readers
    tasks = [asyncio.create_task(waiter.wait(streams, 30)) for streams in waits]
    try:
        for _ in range(200):
            if waiter.stats.waiters == 5 and waiter.stats.readers == 3:
                break
            await asyncio.sleep(0.02)
        assert (waiter.stats.waiters, waiter.stats.streams, waiter.stats.readers) == (5, 20, 3)
        woken = next(iter(waits[4]))
        await coordination_redis.xadd(woken, {"x": "1"})
        assert await asyncio.wait_for(tasks[4], 5) == {woken}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await _settled(waiter, coordination_redis)
    await waiter.aclose()


async def test_bad_arguments_are_refused(coordination_redis, waiter):
    with pytest.raises(ConfigurationError):
        await waiter.wait({}, 1)
    with pytest.raises(ConfigurationError):
        await waiter.wait({"k": "$"}, 1)
    with pytest.raises(ConfigurationError):
        await waiter.wait({"k": "0-0"}, -1)
    with pytest.raises(ConfigurationError):
        StreamWaiter(coordination_redis, max_block_s=0)
    with pytest.raises(ConfigurationError):
        StreamWaiter(coordination_redis, max_keys_per_read=0)


def test_ids_and_slot_groups():
    assert parse_id("5-3") == (5, 3)
    assert parse_id("7") == (7, 0)
    assert parse_id("1-10") > parse_id("1-9")
    for bad in ("$", ">", "a-1", "-1-0", ""):
        with pytest.raises(ConfigurationError):
            parse_id(bad)

    class ClusterLike:
        nodes_manager = object()

    assert slot_group(object(), "a:{q}:ready:5") is None
    assert slot_group(ClusterLike(), "a:{q}:ready:5") == slot_group(ClusterLike(), "b:{q}:x")


async def test_blocking_receives_of_one_coordinator_share_one_read(coordination_redis, key_prefix):
    from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

    from .conftest import SENDER, make_message

    coordinator = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    agents = [AgentId("waiting", f"r{i}") for i in range(50)]
    try:
        receives = [asyncio.create_task(coordinator.receive(a, block=10)) for a in agents]
        for _ in range(500):  # each receive runs its script first (slow on a busy machine)
            if coordinator.stream_waiter.stats.waiters == 50:
                break
            await asyncio.sleep(0.01)
        assert coordinator.stream_waiter.stats.waiters == 50
        assert coordinator.stream_waiter.stats.readers == 1
        for _ in range(100):  # joins kick the read with CLIENT UNBLOCK, on a pool connection
            if not any(t.get_name() == "stream-waiter-kick" for t in _reader_tasks()):
                break
            await asyncio.sleep(0.01)
        assert _in_use(coordination_redis) <= 1
        await coordinator.send_message(SENDER, agents[7], make_message(7, recipient=agents[7]))
        got = await asyncio.wait_for(receives[7], 2)
        assert got is not None
        assert got.message.payload == {"n": 7}
        assert sum(t.done() for t in receives) == 1
    finally:
        await coordinator.aclose()  # the receives still waiting fail
        await asyncio.gather(*receives, return_exceptions=True)
    assert _reader_tasks() == []
    assert _in_use(coordination_redis) == 0
