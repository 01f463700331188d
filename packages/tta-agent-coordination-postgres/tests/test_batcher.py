from __future__ import annotations

import asyncio

import pytest

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.store import (
    Durability,
    StoreError,
    StorePayloadError,
    StoreUnavailableError,
    StoreWriter,
    WriteBehindBatcher,
)


class Sink:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.failures = 0
        self.bad: set[int] = set()

    async def write(self, items: list[int]) -> None:
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise StoreUnavailableError("down")
        if self.bad & set(items):
            raise StorePayloadError("bad item")
        self.batches.append(list(items))

    @property
    def written(self) -> list[int]:
        return [i for b in self.batches for i in b]


async def test_flush_by_size_and_on_close():
    sink = Sink()
    b = WriteBehindBatcher(sink.write, max_pending=100, batch_size=10, flush_interval_s=60)
    await b.put(list(range(25)))
    await b.aclose()
    assert sink.written == list(range(25))
    assert b.stats.written == 25
    assert b.stats.pending == 0
    with pytest.raises(StoreError, match="closed"):
        await b.put([1])


async def test_flush_by_time():
    sink = Sink()
    b = WriteBehindBatcher(sink.write, max_pending=100, batch_size=50, flush_interval_s=0.01)
    await b.put([1, 2])
    for _ in range(200):
        if sink.written:
            break
        await asyncio.sleep(0.01)
    assert sink.written == [1, 2]
    await b.aclose()


async def test_backpressure_waits_and_drops_nothing():
    sink = Sink()
    sink.gate.clear()
    metrics_calls: list[str] = []

    class Metrics:
        def inc_store_backpressure(self, n: int = 1) -> None:
            metrics_calls.append("bp")

        def set_store_pending(self, pending: int) -> None:
            metrics_calls.append("pending")

    b = WriteBehindBatcher(
        sink.write, max_pending=10, batch_size=5, flush_interval_s=0, metrics=Metrics()
    )
    await b.put(list(range(10)))
    blocked = asyncio.create_task(b.put([10, 11]))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    assert b.stats.backpressure_waits == 1
    assert "bp" in metrics_calls
    sink.gate.set()
    await asyncio.wait_for(blocked, 5)
    await b.aclose()
    assert sink.written == list(range(12))


async def test_oversized_put_into_empty_buffer_is_accepted():
    sink = Sink()
    b = WriteBehindBatcher(sink.write, max_pending=5, batch_size=5, flush_interval_s=0)
    await b.put(list(range(12)))
    await b.aclose()
    assert sink.written == list(range(12))


async def test_failed_writes_are_retried_in_order():
    sink = Sink()
    sink.failures = 2
    b = WriteBehindBatcher(sink.write, max_pending=100, batch_size=3, flush_interval_s=0)
    await b.put([1, 2, 3, 4])
    await b.flush()
    assert sink.written == [1, 2, 3, 4]
    assert b.stats.write_failures == 2
    await b.aclose()


async def test_unstorable_item_is_isolated():
    sink = Sink()
    sink.bad = {2}
    b = WriteBehindBatcher(sink.write, max_pending=100, batch_size=4, flush_interval_s=0)
    await b.put([1, 2, 3])
    await b.aclose()
    assert sink.written == [1, 3]
    assert b.stats.rejected == 1


async def test_close_times_out_when_the_store_stays_down():
    sink = Sink()
    sink.gate.clear()
    b = WriteBehindBatcher(sink.write, max_pending=100, batch_size=4, flush_interval_s=0)
    await b.put([1, 2])
    with pytest.raises(StoreUnavailableError, match="could not be written"):
        await b.aclose(timeout_s=0.05)
    assert b.pending == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 0},
        {"batch_size": 10, "max_pending": 5},
        {"flush_interval_s": -1},
        {"retry_max_s": 0},
    ],
)
def test_batcher_settings_are_validated(kwargs):
    with pytest.raises(ConfigurationError):
        WriteBehindBatcher(Sink().write, **kwargs)


async def test_writer_sync_mode_writes_at_once_and_defers_non_essential_failures():
    sink = Sink()
    w = StoreWriter(sink.write, "sync", flush_interval_s=0)
    assert w.durability is Durability.SYNC
    await w.record([1])
    assert sink.written == [1]
    sink.failures = 1
    with pytest.raises(StoreUnavailableError):
        await w.record([2], essential=True)
    sink.failures = 1
    await w.record([3])  # deferred to the buffer, written by the retry
    await w.flush()
    assert sink.written == [1, 3]
    await w.record([])
    assert w.stats.written == 1
    await w.aclose()


async def test_writer_async_mode_buffers():
    sink = Sink()
    w = StoreWriter(sink.write, Durability.ASYNC, flush_interval_s=0)
    await w.record([1, 2])
    await w.aclose()
    assert sink.written == [1, 2]


def test_writer_rejects_unknown_durability():
    with pytest.raises(ConfigurationError, match="durability"):
        StoreWriter(Sink().write, "eventually")
