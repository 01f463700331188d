"""No background task of a worker dies silently (issue 23, item 1, the worker's half).

A coordinator subclass injects failures that are not outages (a ``ValueError`` as a
malformed entry raised it from the decoder, a bug): the loop that met it is logged with
its traceback and restarted with backoff; one that keeps failing stops the worker, which
deregisters so that a replacement can take over. Outages are ridden out however long.
"""

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from tta_agent_coordination import MessageContext, RedisMessageCoordinator
from tta_agent_coordination.errors import (
    CircuitBreakerOpenError,
    ConfigurationError,
    CoordinatorUnavailableError,
    WorkerError,
)
from tta_agent_coordination.runtime.supervision import RestartPolicy
from tta_agent_coordination.runtime.worker import WorkerState

from .conftest import SERVER, eventually
from .test_worker import message, send, settled

FAST = RestartPolicy(max_failures=4, backoff_base_s=0.01, backoff_max_s=0.04)
DECODE_ERROR = "invalid literal for int() with base 10: b''"


class FaultyCoordinator(RedisMessageCoordinator):
    """A coordinator whose chosen methods raise ``error`` for their next ``n`` calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faults: dict[str, list[Any]] = {}
        self.calls: dict[str, int] = {}

    def inject(self, method: str, error: BaseException, times: float = math.inf) -> None:
        self.faults[method] = [error, times]

    def _maybe_fail(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        fault = self.faults.get(method)
        if fault is not None and fault[1] > 0:
            fault[1] -= 1
            raise fault[0]

    async def receive_batch(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe_fail("receive_batch")
        return await super().receive_batch(*args, **kwargs)

    async def extend_lease(self, *args: Any, **kwargs: Any) -> bool:
        self._maybe_fail("extend_lease")
        return await super().extend_lease(*args, **kwargs)

    async def recover_pending(self, *args: Any, **kwargs: Any) -> int:
        self._maybe_fail("recover_pending")
        return await super().recover_pending(*args, **kwargs)

    async def ack_many(self, *args: Any, **kwargs: Any) -> list[bool]:
        self._maybe_fail("ack_many")
        return await super().ack_many(*args, **kwargs)

    async def nack(self, *args: Any, **kwargs: Any) -> bool:
        self._maybe_fail("nack")
        return await super().nack(*args, **kwargs)


@pytest.fixture
async def faulty(coordination_redis, key_prefix):
    coordinator = FaultyCoordinator(
        coordination_redis,
        key_prefix=key_prefix,
        backoff_base=0.05,
        backoff_factor=1.0,
        backoff_max=0.05,
    )
    yield coordinator
    await coordinator.aclose()


def events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


async def test_a_fetch_loop_that_fails_a_few_times_is_restarted_and_goes_on(
    faulty, registry, make_worker
):
    faulty.inject("receive_batch", ValueError(DECODE_ERROR), times=3)
    worker = make_worker(coordinator=faulty, restart_policy=FAST)
    handled: list[int] = []

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        handled.append(ctx.message.payload["n"])

    await send(faulty, message(1))
    with capture_logs() as logs:
        async with worker:
            await eventually(lambda: handled == [1])
            assert worker.state is WorkerState.RUNNING
            assert registry.held() == [SERVER]
    failed = events(logs, "worker_task_failed")
    assert [e["failures"] for e in failed] == [1, 2, 3]
    assert {e["task"] for e in failed} == {"fetch loop"}
    assert all(isinstance(e["exc_info"], ValueError) for e in failed)  # with its traceback
    assert all(e["log_level"] == "error" for e in failed)
    assert events(logs, "worker_task_gave_up") == []
    assert worker.stop_reason == "requested"
    assert worker.failure is None


async def test_a_fetch_loop_that_keeps_failing_stops_and_deregisters_the_worker(
    faulty, coordinator, registry, make_worker
):
    faulty.inject("receive_batch", ValueError(DECODE_ERROR))
    worker = make_worker(coordinator=faulty, restart_policy=FAST)
    worker.add_handler(_ignore)
    with capture_logs() as logs:
        await worker.start()
        assert registry.held() == [SERVER]
        with pytest.raises(WorkerError, match="fetch loop failed 4 times in a row: ValueError"):
            await asyncio.wait_for(worker.run(install_signal_handlers=False), 5)
    assert worker.state is WorkerState.STOPPED
    assert worker.stop_reason == f"fetch loop failed 4 times in a row: ValueError: {DECODE_ERROR}"
    assert worker.failure == worker.stop_reason
    assert faulty.calls["receive_batch"] == 4
    [gave_up] = events(logs, "worker_task_gave_up")
    assert gave_up["log_level"] == "critical"
    assert isinstance(gave_up["exc_info"], ValueError)
    # Not pretending to be alive: deregistered, so a replacement registers at once.
    assert registry.held() == []
    assert await registry.get(SERVER) is None
    replacement = make_worker()
    handled: list[int] = []

    @replacement.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        handled.append(ctx.message.payload["n"])

    await send(coordinator, message(7))
    async with replacement:
        await eventually(lambda: handled == [7])


async def _ignore(ctx: MessageContext[Any]) -> None:
    return None


async def test_a_lease_keeper_that_keeps_failing_stops_the_worker(faulty, registry, make_worker):
    faulty.inject("extend_lease", RuntimeError("bug in extend_lease"))
    # Leases of 0.2 s: the keeper checks every 0.05 s and extends at half of it.
    worker = make_worker(coordinator=faulty, restart_policy=FAST, visibility_timeout=0.2)
    release = asyncio.Event()

    @worker.on_event()
    async def slow(ctx: MessageContext[Any]) -> None:
        await release.wait()

    await send(faulty, message(1))
    await worker.start()
    try:
        await eventually(lambda: worker.state is not WorkerState.RUNNING, timeout=5)
        assert worker.failure == (
            "lease keeper failed 4 times in a row: RuntimeError: bug in extend_lease"
        )
    finally:
        release.set()
        await worker.stop(grace_period=1)
    assert registry.held() == []


async def test_a_maintenance_loop_that_keeps_failing_stops_the_worker(
    faulty, registry, make_worker
):
    faulty.inject("recover_pending", KeyError("queue"))
    worker = make_worker(coordinator=faulty, restart_policy=FAST, maintenance_interval=0.02)
    worker.add_handler(_ignore)
    await worker.start()
    await eventually(lambda: worker.state is WorkerState.STOPPED, timeout=5)
    assert worker.failure == "maintenance failed 4 times in a row: KeyError: 'queue'"
    assert registry.held() == []


async def test_progress_between_failures_forgives_them(faulty, registry, make_worker):
    # Fails every other round for much longer than the limit: never four in a row.
    worker = make_worker(coordinator=faulty, restart_policy=FAST, maintenance_interval=0.02)
    worker.add_handler(_ignore)
    await worker.start()
    for _ in range(8):
        faulty.inject("recover_pending", KeyError("queue"), times=1)
        await eventually(lambda: faulty.faults["recover_pending"][1] == 0, timeout=5)
        await asyncio.sleep(0.05)
    assert worker.state is WorkerState.RUNNING
    assert worker.failure is None
    await worker.stop()


async def test_outages_are_ridden_out_past_the_limit(faulty, registry, make_worker):
    # Five outages in a row, one more than the limit of failures (backoff 0.1 .. 1.6 s).
    faulty.inject("receive_batch", CoordinatorUnavailableError("redis down"), times=5)
    worker = make_worker(coordinator=faulty, restart_policy=FAST)
    handled: list[int] = []

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        handled.append(ctx.message.payload["n"])

    await send(faulty, message(1))
    with capture_logs() as logs:
        async with worker:
            await eventually(lambda: handled == [1], timeout=15)
            assert worker.state is WorkerState.RUNNING
    assert len(events(logs, "receive_failed")) == 5
    assert events(logs, "worker_task_failed") == []


async def test_an_open_breaker_paces_the_fetch_loop_without_extra_backoff(
    faulty, registry, make_worker
):
    # Eight refusals that each say "retry in 0.05 s": the loop waits that, not its own
    # growing backoff (which would be 0.1 + 0.2 + ... + 5 s, over 10 s in all).
    faulty.inject("receive_batch", CircuitBreakerOpenError("redis", retry_after=0.05), times=8)
    worker = make_worker(coordinator=faulty, restart_policy=FAST)
    handled: list[int] = []

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        handled.append(ctx.message.payload["n"])

    await send(faulty, message(1))
    with capture_logs() as logs:
        async with worker:
            await eventually(lambda: handled == [1], timeout=15)
    waits = [e["retry_in"] for e in events(logs, "receive_failed")]
    assert waits == [0.05] * 8


@pytest.mark.parametrize("method", ["ack_many", "nack"])
async def test_a_settlement_that_raises_is_counted_and_the_message_comes_back(
    faulty, make_worker, method
):
    faulty.inject(method, ValueError("broken reply"), times=1)
    worker = make_worker(coordinator=faulty, registry=None, visibility_timeout=0.3)
    attempts: list[int] = []

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        attempts.append(ctx.attempts)
        if method == "nack" and ctx.attempts == 1:
            raise RuntimeError("fail once, to be nacked")

    await send(faulty, message(1))
    with capture_logs() as logs:
        async with worker:
            await eventually(lambda: len(attempts) == 2, timeout=10)
            await eventually(lambda: settled(faulty))
            assert worker.state is WorkerState.RUNNING
    assert worker.stats.settle_errors == 1
    [failed] = events(logs, "settle_failed")
    assert isinstance(failed["exc_info"], ValueError)
    assert events(logs, "delivery_crashed") == []


async def test_ack_many_with_the_wrong_number_of_flags_fails_the_batch_not_the_worker(
    faulty, make_worker, monkeypatch
):
    calls: list[int] = []
    real = RedisMessageCoordinator.ack_many

    async def short(self: Any, agent_id: Any, tokens: Any) -> list[bool]:
        calls.append(len(tokens))
        flags = await real(self, agent_id, tokens)
        return flags[:-1] if len(calls) == 1 else flags

    monkeypatch.setattr(RedisMessageCoordinator, "ack_many", short)
    worker = make_worker(coordinator=faulty, registry=None)
    handled: list[int] = []

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        handled.append(ctx.message.payload["n"])

    await send(faulty, message(1))
    async with worker:
        await eventually(lambda: worker.stats.settle_errors == 1)
        await send(faulty, message(2))
        await eventually(lambda: worker.stats.succeeded == 1)
    assert handled[:2] == [1, 2]


def test_restart_policy_delays_grow_are_bounded_and_jittered():
    policy = RestartPolicy(max_failures=8, backoff_base_s=0.1, backoff_max_s=5.0)
    for failures, step in [(1, 0.1), (2, 0.2), (3, 0.4), (7, 5.0), (1000, 5.0)]:
        delays = {policy.delay(failures) for _ in range(50)}
        assert all(step / 2 <= d <= step for d in delays)
        assert len(delays) > 1  # jittered
    total_max = sum(min(5.0, 0.1 * 2 ** (n - 1)) for n in range(1, 8))
    assert 10 < total_max < 12  # the documented "about 6-11 s" before giving up


@pytest.mark.parametrize(
    "options",
    [{"max_failures": 0}, {"backoff_base_s": 0}, {"backoff_base_s": 1, "backoff_max_s": 0.5}],
)
def test_restart_policy_refuses_values_out_of_range(options):
    with pytest.raises(ConfigurationError):
        RestartPolicy(**options)
