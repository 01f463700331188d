import asyncio
import os
import signal
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    AgentWorker,
    FailureType,
    MessageContext,
    MessageType,
    PermanentError,
    RedisAgentRegistry,
    RedisMessageCoordinator,
)
from tta_agent_coordination.errors import (
    AgentAlreadyRegisteredError,
    ConfigurationError,
    WorkerError,
)
from tta_agent_coordination.redis import stream_waiter
from tta_agent_coordination.runtime.worker import WorkerState

from .conftest import CLIENT, SERVER, HeldHandlers, eventually


def message(
    n: int = 0, *, kind: str | None = None, mtype=MessageType.EVENT, **extra
) -> AgentMessage:
    payload: dict[str, Any] = {"n": n}
    if kind is not None:
        payload["kind"] = kind
    return AgentMessage(
        sender=CLIENT, recipient=SERVER, message_type=mtype, payload=payload, **extra
    )


async def send(coordinator: RedisMessageCoordinator, *messages: AgentMessage) -> None:
    results = await coordinator.send_many(list(messages))
    assert all(r.delivered for r in results)


async def settled(coordinator: RedisMessageCoordinator, agent: AgentId = SERVER) -> bool:
    stats = await coordinator.queue_stats(agent)
    return stats.unsettled == 0


async def test_handles_and_acks_every_message(coordinator, make_worker):
    seen: list[int] = []
    worker = make_worker()

    @worker.on_event()
    async def handle(ctx: MessageContext[dict[str, Any]]) -> None:
        seen.append(ctx.payload["n"])

    await send(coordinator, *(message(i) for i in range(25)))
    async with worker:
        await eventually(lambda: worker.stats.succeeded == 25)
    assert sorted(seen) == list(range(25))
    assert await settled(coordinator)
    stats = worker.stats
    assert (stats.received, stats.retried, stats.dead_lettered, stats.in_flight) == (25, 0, 0, 0)
    assert worker.state is WorkerState.STOPPED


@dataclass
class Span:
    command: str
    start: float
    end: float | None = None
    detail: str = ""
    """The command's first arguments (which script, which keys), for a failure's message."""


def record_commands(client: Any, monkeypatch: pytest.MonkeyPatch) -> list[Span]:
    """Every command ``client`` sends from now on, with when it started and ended."""
    spans: list[Span] = []
    send_command = client.execute_command

    async def execute_command(*args: Any, **options: Any) -> Any:
        loop = asyncio.get_running_loop()
        span = Span(str(args[0]).upper(), loop.time(), detail=repr(args[1:5])[:200])
        spans.append(span)
        try:
            return await send_command(*args, **options)
        finally:
            span.end = loop.time()

    monkeypatch.setattr(client, "execute_command", execute_command)
    # Blocking receives wait in the coordinator's shared XREAD, sent on its own connection.
    xread = stream_waiter._xread

    async def shared_xread(*args: Any) -> Any:
        span = Span("XREAD", asyncio.get_running_loop().time())
        spans.append(span)
        try:
            return await xread(*args)
        finally:
            span.end = asyncio.get_running_loop().time()

    monkeypatch.setattr(stream_waiter, "_xread", shared_xread)
    return spans


async def test_an_idle_worker_waits_in_one_blocking_read_and_wakes_on_a_send(
    coordination_redis, key_prefix, make_worker, monkeypatch
):
    # A polling worker fails here whatever its interval: polls that return at once
    # never leave a command open for long (or send commands while idle), and a worker
    # that waits out its poll_interval picks the message up seconds late.
    spans = record_commands(coordination_redis, monkeypatch)
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    worker = make_worker(
        coordinator=coord, registry=None, poll_interval=3.0, maintenance_interval=60.0
    )
    loop = asyncio.get_running_loop()
    handled: asyncio.Future[float] = loop.create_future()

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        handled.set_result(loop.time())

    def blocking_read_open() -> bool:
        return any(s.end is None and loop.time() - s.start >= 0.2 for s in spans)

    async with worker:
        await eventually(blocking_read_open, timeout=5)
        [read] = [s for s in spans if s.end is None]
        idle_from = loop.time()
        await asyncio.sleep(1.0)
        sent = [(s.command, s.detail) for s in spans if s.start >= idle_from]
        assert sent == [], f"sent while idle: {sent}; the parked read: {read}"
        assert read.end is None  # still the same read
        assert read.command == "XREAD"
        sent_at = loop.time()
        await send(coord, message(1))
        handled_at = await asyncio.wait_for(handled, 5)
    # The read would have lasted 3 s (poll_interval); the send woke it at once.
    assert handled_at - sent_at < 1.0
    assert read.end is not None
    assert read.end < read.start + 2.5


async def test_runs_at_most_concurrency_handlers_at_once(coordinator, make_worker):
    worker = make_worker(concurrency=3)
    held = HeldHandlers()

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        await held.hold()

    await send(coordinator, *(message(i) for i in range(10)))
    async with worker:
        await eventually(lambda: held.running == 3)
        await asyncio.sleep(0.3)
        assert held.peak == 3
        assert (await coordinator.queue_stats(SERVER)).leased == 3
        held.release.set()
        await eventually(lambda: worker.stats.succeeded == 10)
    assert held.peak == 3


async def test_transient_failure_is_retried_then_succeeds(coordinator, make_worker):
    worker = make_worker()
    attempts: list[int] = []

    @worker.on_event()
    async def flaky(ctx: MessageContext[Any]) -> None:
        attempts.append(ctx.attempts)
        if ctx.attempts == 1:
            raise RuntimeError("the model timed out")

    await send(coordinator, message(1))
    async with worker:
        await eventually(lambda: worker.stats.succeeded == 1)
    assert attempts == [1, 2]
    assert worker.stats.retried == 1
    assert await settled(coordinator)


async def test_retries_run_out_into_the_dead_letter_queue(coordinator, make_worker):
    worker = make_worker()
    attempts: list[int] = []

    @worker.on_event()
    async def always_fails(ctx: MessageContext[Any]) -> None:
        attempts.append(ctx.attempts)
        raise RuntimeError("still down")

    await send(coordinator, message(1))
    async with worker:
        await eventually(lambda: worker.stats.dead_lettered == 1)
    assert attempts == [1, 2, 3]  # retry_attempts=2 in the fixture
    [letter] = await coordinator.dead_letters(SERVER)
    assert letter.failure_type is FailureType.TRANSIENT
    assert letter.last_error == "RuntimeError: still down"


async def test_permanent_error_dead_letters_at_once(coordinator, make_worker):
    worker = make_worker()

    @worker.on_event()
    async def refuses(ctx: MessageContext[Any]) -> None:
        raise PermanentError("the scene does not exist")

    await send(coordinator, message(7))
    async with worker:
        await eventually(lambda: worker.stats.dead_lettered == 1)
    [letter] = await coordinator.dead_letters(SERVER)
    assert letter.failure_type is FailureType.PERMANENT
    assert letter.attempts == 1
    assert "the scene does not exist" in (letter.last_error or "")
    assert worker.stats.retried == 0


class Scene(BaseModel):
    n: int
    title: str


async def test_payload_model_validates_and_invalid_payload_is_permanent(coordinator, make_worker):
    worker = make_worker()
    titles: list[str] = []

    @worker.on_event(payload=Scene)
    async def build(ctx: MessageContext[Scene]) -> None:
        titles.append(ctx.payload.title)

    good = AgentMessage(
        sender=CLIENT,
        recipient=SERVER,
        message_type=MessageType.EVENT,
        payload={"n": 1, "title": "cave"},
    )
    await send(coordinator, good, message(2))  # message(2) has no title
    async with worker:
        await eventually(lambda: worker.stats.dead_lettered == 1 and worker.stats.succeeded == 1)
    assert titles == ["cave"]
    [letter] = await coordinator.dead_letters(SERVER)
    assert letter.failure_type is FailureType.PERMANENT
    assert "ValidationError" in (letter.last_error or "")


async def test_dispatch_by_type_and_kind_most_specific_first(coordinator, make_worker):
    worker = make_worker()
    calls: list[tuple[str, int]] = []

    @worker.on_event(kind="describe")
    async def describe(ctx: MessageContext[Any]) -> None:
        calls.append(("describe", ctx.payload["n"]))

    @worker.on_event()
    async def any_event(ctx: MessageContext[Any]) -> None:
        calls.append(("event", ctx.payload["n"]))

    @worker.handler(None, kind="ping")
    async def ping_any_type(ctx: MessageContext[Any]) -> None:
        calls.append(("ping", ctx.payload["n"]))

    @worker.handler()
    async def fallback(ctx: MessageContext[Any]) -> None:
        calls.append(("fallback", ctx.payload["n"]))

    await send(
        coordinator,
        message(1, kind="describe"),
        message(2, kind="other"),
        message(3),
        message(4, kind="ping", mtype=MessageType.RESPONSE),
        message(5, mtype=MessageType.RESPONSE),
    )
    async with worker:
        await eventually(lambda: worker.stats.succeeded == 5)
    assert sorted(calls, key=lambda c: c[1]) == [
        ("describe", 1),
        ("event", 2),
        ("event", 3),
        ("ping", 4),
        ("fallback", 5),
    ]
    assert (
        "event",
        "describe",
        "test_dispatch_by_type_and_kind_most_specific_first.<locals>.describe",
    ) in worker.handlers()


async def test_a_message_without_a_handler_is_dead_lettered(coordinator, make_worker):
    worker = make_worker()

    @worker.on_request()
    async def only_requests(ctx: MessageContext[Any]) -> None:
        return None

    await send(coordinator, message(1, kind="lost"))
    async with worker:
        await eventually(lambda: worker.stats.dead_lettered == 1)
    [letter] = await coordinator.dead_letters(SERVER)
    assert "no handler for event messages of kind 'lost'" in (letter.last_error or "")


async def test_long_handler_keeps_its_lease(coordinator, make_worker):
    worker = make_worker(visibility_timeout=0.3)
    runs = 0

    @worker.on_event()
    async def slow(ctx: MessageContext[Any]) -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(1.2)
        assert not ctx.lease_lost

    await send(coordinator, message(1))
    async with worker:
        await eventually(lambda: worker.stats.succeeded == 1)
    assert runs == 1
    assert worker.stats.lease_extensions >= 2
    assert worker.stats.leases_lost == 0


async def test_handler_timeout_fails_with_timeout_and_is_retried(coordinator, make_worker):
    worker = make_worker()
    attempts: list[int] = []

    @worker.on_event(timeout=0.1)
    async def sometimes_hangs(ctx: MessageContext[Any]) -> None:
        attempts.append(ctx.attempts)
        if ctx.attempts == 1:
            await asyncio.sleep(10)

    await send(coordinator, message(1))
    async with worker:
        await eventually(lambda: worker.stats.succeeded == 1)
    assert attempts == [1, 2]
    assert worker.stats.retried == 1


async def test_registers_with_metadata_and_deregisters_on_stop(coordinator, registry, make_worker):
    worker = make_worker(capabilities=["narrate"], metadata={"team": "story"})

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        return None

    await worker.start()
    record = await registry.get(SERVER)
    assert record is not None
    assert record.alive
    assert record.has_capability("narrate")
    assert record.metadata["team"] == "story"
    assert record.metadata["worker"]["concurrency"] == 8
    assert registry.heartbeats_running
    await worker.stop()
    assert await registry.get(SERVER) is None  # deregistered, not merely expired
    assert not registry.heartbeats_running


async def test_second_worker_for_a_live_agent_is_refused(coordinator, registry, make_worker):
    first = make_worker()
    second = make_worker()
    for w in (first, second):
        w.add_handler(_noop_handler, MessageType.EVENT)
    await first.start()
    with pytest.raises(AgentAlreadyRegisteredError):
        await second.start()
    assert second.state is WorkerState.STOPPED
    assert first.state is WorkerState.RUNNING


async def _noop_handler(ctx: MessageContext[Any]) -> None:
    return None


async def test_stuck_worker_is_replaced_and_its_leased_work_handed_over(
    coordination_redis, key_prefix, coordinator, make_worker
):
    # Worker A hangs on its message; worker B takes the agent over. The registry hands
    # A's leased message back to the queue at once, B handles it, and A notices that
    # it lost its registration and stops.
    registry_a = RedisAgentRegistry(
        coordination_redis, key_prefix=key_prefix, heartbeat_ttl_s=3.0, coordinator=coordinator
    )
    registry_b = RedisAgentRegistry(
        coordination_redis, key_prefix=key_prefix, heartbeat_ttl_s=3.0, coordinator=coordinator
    )
    stuck = asyncio.Event()
    handled_by: list[str] = []
    # concurrency=1: A's only slot is stuck, so A cannot take the message back itself.
    worker_a = make_worker(
        registry=registry_a, visibility_timeout=30.0, grace_period=0.1, concurrency=1
    )
    worker_b = make_worker(registry=registry_b, takeover=True)

    @worker_a.on_event()
    async def hang(ctx: MessageContext[Any]) -> None:
        stuck.set()
        await asyncio.sleep(60)

    @worker_b.on_event()
    async def finish(ctx: MessageContext[Any]) -> None:
        handled_by.append("b")

    try:
        await send(coordinator, message(1))
        await worker_a.start()
        await asyncio.wait_for(stuck.wait(), 5)
        await worker_b.start()
        await eventually(lambda: handled_by == ["b"])
        await eventually(lambda: worker_a.state is WorkerState.STOPPED)
        assert worker_a.stop_reason == "registration lost"
        assert worker_a.stats.abandoned == 1
        assert await settled(coordinator)
    finally:
        await worker_a.stop(grace_period=0)
        await worker_b.stop(grace_period=0)
        await registry_a.aclose()
        await registry_b.aclose()


async def test_graceful_stop_finishes_in_flight_work(coordinator, make_worker):
    worker = make_worker(grace_period=5.0)
    started = asyncio.Event()

    @worker.on_event()
    async def slow(ctx: MessageContext[Any]) -> None:
        started.set()
        await asyncio.sleep(0.5)

    await send(coordinator, message(1))
    await worker.start()
    await asyncio.wait_for(started.wait(), 5)
    await worker.stop()
    assert worker.stats.succeeded == 1
    assert worker.stats.abandoned == 0
    assert await settled(coordinator)


async def test_stop_past_the_grace_period_leaves_the_message_leased_for_recovery(
    coordinator, make_worker
):
    worker = make_worker(grace_period=0.1, visibility_timeout=0.5)
    started = asyncio.Event()

    @worker.on_event()
    async def endless(ctx: MessageContext[Any]) -> None:
        started.set()
        await asyncio.sleep(60)

    await send(coordinator, message(1))
    await worker.start()
    await asyncio.wait_for(started.wait(), 5)
    await worker.stop()
    assert worker.stats.abandoned == 1
    stats = await coordinator.queue_stats(SERVER)
    assert stats.leased == 1  # not nacked, not lost

    successor = make_worker()
    done = asyncio.Event()

    @successor.on_event()
    async def finish(ctx: MessageContext[Any]) -> None:
        assert ctx.attempts == 2
        done.set()

    async with successor:
        await asyncio.wait_for(done.wait(), 10)
        await eventually(lambda: successor.stats.succeeded == 1)


async def test_sigterm_stops_the_worker_gracefully(coordinator, registry, make_worker):
    worker = make_worker(grace_period=5.0)
    started = asyncio.Event()

    @worker.on_event()
    async def slow(ctx: MessageContext[Any]) -> None:
        started.set()
        await asyncio.sleep(0.3)

    await send(coordinator, message(1), message(2))
    runner = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 5)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(runner, 10)
    assert worker.stop_reason == "SIGTERM"
    # Both messages were reserved by the first read, before the signal: both finish.
    assert (worker.stats.received, worker.stats.succeeded, worker.stats.abandoned) == (2, 2, 0)
    assert await registry.get(SERVER) is None  # deregistered, not merely expired


async def test_second_signal_skips_the_grace_period(coordinator, make_worker):
    worker = make_worker(grace_period=30.0)
    started = asyncio.Event()

    @worker.on_event()
    async def endless(ctx: MessageContext[Any]) -> None:
        started.set()
        await asyncio.sleep(60)

    await send(coordinator, message(1))
    runner = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 5)
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.sleep(0.3)
    assert not runner.done()
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.wait_for(runner, 5)
    assert worker.stats.abandoned == 1


class FailingReceives:
    """A guard that fails the first ``n`` receive calls as if Redis were down."""

    def __init__(self, n: int) -> None:
        self.left = n

    async def run(self, operation, fn, *, retry=False):
        if operation == "receive" and self.left > 0:
            self.left -= 1
            raise ConnectionError("redis went away")
        return await fn()


async def test_redis_errors_while_receiving_do_not_kill_the_worker(
    coordination_redis, key_prefix, make_worker
):
    guard = FailingReceives(4)
    flaky = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, guard=guard)
    worker = make_worker(coordinator=flaky, registry=None)

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        return None

    await send(flaky, message(1))
    async with worker:
        await eventually(lambda: worker.stats.succeeded == 1)
    assert guard.left == 0


async def test_handler_guard_trips_its_breaker(coordinator, make_worker):
    from tta_agent_coordination.resilience import (
        AgentCallGuard,
        CircuitBreaker,
        CircuitBreakerConfig,
    )

    breaker = CircuitBreaker("llm", CircuitBreakerConfig(failure_threshold=2, timeout_seconds=60))
    # Nine failures, each logged with its traceback by structlog's unconfigured default
    # (rich, with locals): up to a second apiece on a busy machine, with the event loop
    # blocked meanwhile. A lease that short (2 s) could expire before the nack, so this
    # test, which is about the breaker, gives them 30 s.
    worker = make_worker(guard=AgentCallGuard(breaker), visibility_timeout=30.0)
    calls = 0

    @worker.on_event()
    async def call_llm(ctx: MessageContext[Any]) -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("llm down")

    await send(coordinator, *(message(i) for i in range(3)))
    async with worker:
        await eventually(lambda: worker.stats.dead_lettered == 3, timeout=40)
    # Two real calls trip the breaker; the rest fail fast without calling the LLM.
    assert calls == 2
    letters = await coordinator.dead_letters(SERVER)
    assert any("CircuitBreakerOpenError" in (d.last_error or "") for d in letters)


async def test_response_to_reply_to_queue_when_nobody_waits(coordinator, make_worker):
    worker = make_worker()

    @worker.on_request()
    async def answer(ctx: MessageContext[Any]) -> dict[str, Any]:
        return {"echo": ctx.payload["n"]}

    request = message(5, mtype=MessageType.REQUEST, reply_to=CLIENT, correlation_id="conv-1")
    await send(coordinator, request)
    async with worker:
        await eventually(lambda: worker.stats.succeeded == 1)
    reply = await coordinator.receive(CLIENT)
    assert reply is not None
    assert reply.message.message_type is MessageType.RESPONSE
    assert reply.message.payload == {"echo": 5}
    assert reply.message.correlation_id == "conv-1"
    assert reply.message.sender == SERVER
    assert worker.stats.replies == 1


async def test_context_send_carries_the_correlation_id(coordinator, make_worker):
    worker = make_worker()

    @worker.on_event()
    async def forward(ctx: MessageContext[Any]) -> None:
        result = await ctx.send(CLIENT, {"forwarded": ctx.payload["n"]})
        assert result.delivered

    await send(coordinator, message(3, correlation_id="story-9"))
    async with worker:
        await eventually(lambda: worker.stats.succeeded == 1)
    got = await coordinator.receive(CLIENT)
    assert got is not None
    assert got.message.payload == {"forwarded": 3}
    assert got.message.correlation_id == "story-9"
    assert got.message.sender == SERVER


async def test_subscriptions_bring_published_events_and_are_removed_on_stop(
    coordinator, make_worker
):
    worker = make_worker(subscriptions=[MessageType.EVENT])
    got: list[int] = []

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        got.append(ctx.payload["n"])

    async with worker:
        assert SERVER in await coordinator.subscribers(MessageType.EVENT)
        results = await coordinator.publish_event(CLIENT, message(8))
        assert [r.recipient for r in results] == [SERVER]
        await eventually(lambda: got == [8])
    assert SERVER not in await coordinator.subscribers(MessageType.EVENT)


async def test_misuse_raises_typed_errors(coordinator, make_worker):
    with pytest.raises(ConfigurationError):
        make_worker(concurrency=0)
    with pytest.raises(ConfigurationError):
        make_worker(grace_period=-1)
    with pytest.raises(ConfigurationError):
        make_worker(visibility_timeout=0)
    with pytest.raises(ConfigurationError):
        AgentWorker(coordinator, None, "server:s1")  # type: ignore[arg-type]
    worker = make_worker()
    with pytest.raises(WorkerError, match="no handlers"):
        await worker.start()

    worker = make_worker()
    worker.add_handler(_noop_handler, MessageType.EVENT)
    with pytest.raises(ConfigurationError, match="already handles"):
        worker.add_handler(_noop_handler, MessageType.EVENT)
    with pytest.raises(ConfigurationError):
        worker.add_handler(_noop_handler, MessageType.REQUEST, timeout=0)
    await worker.start()
    with pytest.raises(WorkerError):
        await worker.start()
    with pytest.raises(WorkerError):
        worker.add_handler(_noop_handler, MessageType.REQUEST)
    await worker.stop()
    await worker.stop()  # idempotent
    assert worker.state is WorkerState.STOPPED


async def test_ack_failure_is_survived_and_the_message_comes_back(
    coordination_redis, key_prefix, make_worker
):
    class FailingAcks:
        def __init__(self) -> None:
            self.failed = 0

        async def run(self, operation, fn, *, retry=False):
            if operation == "ack" and self.failed == 0:
                self.failed += 1
                raise ConnectionError("connection reset")
            return await fn()

    guard = FailingAcks()
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, guard=guard)
    worker = make_worker(coordinator=coord, registry=None, visibility_timeout=0.3)
    attempts: list[int] = []

    @worker.on_event()
    async def handle(ctx: MessageContext[Any]) -> None:
        attempts.append(ctx.attempts)

    await send(coord, message(1))
    async with worker:
        await eventually(lambda: worker.stats.succeeded == 1, timeout=15)
    # at-least-once: the first ack was lost, the lease expired, the message came back.
    assert attempts == [1, 2]
    assert worker.stats.settle_errors == 1
    assert await settled(coord)
