"""What the worker runtime needs from a back-end: the interfaces, and who implements them.

The Redis classes implement every member of ``MessageCoordinator`` and ``AgentRegistry``
with a compatible signature (pyright checks the types; this checks names, kinds,
order and defaults at run time). A back-end of TTA's eight methods plus ``config``,
here a few lists, runs a worker on the interfaces' defaults.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    AgentWorker,
    FailureType,
    MessageContext,
    MessageResult,
    MessageType,
    PermanentError,
    ReceivedMessage,
    RedisAgentRegistry,
    RedisMessageCoordinator,
)
from tta_agent_coordination.agents import AgentRecord
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.interfaces import (
    AgentRegistry,
    CoordinatorLimits,
    MessageCoordinator,
    Ownership,
)
from tta_agent_coordination.models import MessageSubscription, QueueMessage
from tta_agent_coordination.runtime.worker import WorkerState
from tta_agent_coordination.testing import fake_redis

from .conftest import CLIENT, SERVER, eventually

PAIRS = [(MessageCoordinator, RedisMessageCoordinator), (AgentRegistry, RedisAgentRegistry)]
MEMBERS = [
    (interface, impl, name)
    for interface, impl in PAIRS
    for name in vars(interface)
    if not name.startswith("_")
]


# --- the Redis classes conform ------------------------------------------------------------


@pytest.mark.parametrize(("interface", "impl"), PAIRS, ids=lambda c: c.__name__)
def test_the_redis_classes_leave_nothing_abstract(interface: type, impl: type) -> None:
    assert issubclass(impl, interface)
    assert not getattr(impl, "__abstractmethods__", frozenset())


@pytest.mark.parametrize(
    ("interface", "impl", "name"), MEMBERS, ids=[f"{i.__name__}.{n}" for i, _, n in MEMBERS]
)
def test_the_redis_classes_implement_each_member_compatibly(
    interface: type, impl: type, name: str
) -> None:
    declared = inspect.getattr_static(interface, name)
    implemented = inspect.getattr_static(impl, name)
    assert implemented is not declared, f"{impl.__name__} relies on the default {name}"
    if isinstance(declared, property):
        assert isinstance(implemented, property)
        return
    assert inspect.iscoroutinefunction(implemented) == inspect.iscoroutinefunction(declared)
    assert incompatibilities(inspect.signature(declared), inspect.signature(implemented)) == []


def incompatibilities(base: inspect.Signature, impl: inspect.Signature) -> list[str]:
    """Why a call that is valid for ``base`` could fail for ``impl`` (empty: none)."""
    problems: list[str] = []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    base_pos = [p.name for p in base.parameters.values() if p.kind in positional]
    impl_pos = [p.name for p in impl.parameters.values() if p.kind in positional]
    if impl_pos[: len(base_pos)] != base_pos:
        problems.append(f"positional parameters {impl_pos} do not start with {base_pos}")
    for name, param in base.parameters.items():
        other = impl.parameters.get(name)
        if other is None:
            problems.append(f"no parameter {name}")
        elif other.kind != param.kind:
            problems.append(f"{name} is {other.kind.description}, not {param.kind.description}")
        elif param.default is not inspect.Parameter.empty and other.default != param.default:
            problems.append(f"{name} defaults to {other.default!r}, not {param.default!r}")
    for name, param in impl.parameters.items():
        required = param.default is inspect.Parameter.empty and param.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        )
        if name not in base.parameters and required:
            problems.append(f"extra required parameter {name}")
    return problems


def test_the_compatibility_check_catches_each_kind_of_mismatch() -> None:
    def base(self, a: int, b: int = 1, *, c: bool = False) -> None: ...
    def same_plus_options(self, a: int, b: int = 1, *, c: bool = False, d: int = 0) -> None: ...
    def renamed(self, x: int, b: int = 1, *, c: bool = False) -> None: ...
    def keyword_b(self, a: int, *, b: int = 1, c: bool = False) -> None: ...
    def other_default(self, a: int, b: int = 2, *, c: bool = False) -> None: ...
    def extra_required(self, a: int, b: int = 1, *, c: bool = False, d: int) -> None: ...

    sig = inspect.signature
    assert incompatibilities(sig(base), sig(same_plus_options)) == []
    assert incompatibilities(sig(base), sig(renamed)) == [
        "positional parameters ['self', 'x', 'b'] do not start with ['self', 'a', 'b']",
        "no parameter a",
        "extra required parameter x",
    ]
    assert incompatibilities(sig(base), sig(keyword_b)) == [
        "positional parameters ['self', 'a'] do not start with ['self', 'a', 'b']",
        "b is keyword-only, not positional or keyword",
    ]
    assert incompatibilities(sig(base), sig(other_default)) == ["b defaults to 2, not 1"]
    assert incompatibilities(sig(base), sig(extra_required)) == ["extra required parameter d"]


def test_the_redis_config_has_every_coordinator_limit() -> None:
    config: CoordinatorLimits = RedisMessageCoordinator(fake_redis(), retry_attempts=5).config
    limits = [n for n, v in vars(CoordinatorLimits).items() if isinstance(v, property)]
    assert sorted(limits) == [
        "backoff_base",
        "backoff_factor",
        "backoff_max",
        "queue_size",
        "retry_attempts",
    ]
    assert config.retry_attempts == 5
    assert all(isinstance(getattr(config, n), int | float) for n in limits)


# --- a back-end of lists --------------------------------------------------------------------


@dataclass
class Limits:
    queue_size: int = 100
    retry_attempts: int = 1
    backoff_base: float = 0.0
    backoff_factor: float = 1.0
    backoff_max: float = 0.0


@dataclass
class ListCoordinator(MessageCoordinator):
    """TTA's eight methods and ``config`` over lists; every other member is the default."""

    limits: Limits = field(default_factory=Limits)
    ready: dict[AgentId, list[QueueMessage]] = field(default_factory=dict)
    leased: dict[str, tuple[AgentId, QueueMessage]] = field(default_factory=dict)
    dead: list[tuple[QueueMessage, FailureType, str | None]] = field(default_factory=list)
    receives: int = 0
    tokens: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def config(self) -> Limits:
        return self.limits

    async def send_message(self, sender, recipient, message) -> MessageResult:
        self.ready.setdefault(recipient, []).append(QueueMessage(message=message))
        return MessageResult(message_id=message.message_id, delivered=True, recipient=recipient)

    async def broadcast_message(self, sender, message, recipients) -> list[MessageResult]:
        return [
            await self.send_message(sender, r, message.model_copy(update={"recipient": r}))
            for r in recipients
        ]

    def subscribe_to_messages(self, agent_id, message_types) -> MessageSubscription:
        return MessageSubscription(subscription_id="s", agent_id=agent_id)

    async def receive(self, agent_id, visibility_timeout=5) -> ReceivedMessage | None:
        self.receives += 1
        queue = self.ready.get(agent_id)
        if not queue:
            return None
        entry = queue.pop(0)
        entry = entry.model_copy(update={"delivery_attempts": entry.delivery_attempts + 1})
        token = f"t{next(self.tokens)}"
        self.leased[token] = (agent_id, entry)
        return ReceivedMessage(token=token, queue_message=entry)

    async def ack(self, agent_id, token) -> bool:
        return self.leased.pop(token, None) is not None

    async def nack(self, agent_id, token, failure=FailureType.TRANSIENT, error=None) -> bool:
        held = self.leased.pop(token, None)
        if held is None:
            return False
        queue, entry = held
        final = entry.delivery_attempts > self.limits.retry_attempts
        if failure is FailureType.PERMANENT or final:
            self.dead.append((entry, failure, error))
        else:
            self.ready.setdefault(queue, []).append(entry)
        return True

    async def recover_pending(self, agent_id=None) -> int:
        return 0

    async def configure(self, **limits: Any) -> None:
        for name, value in limits.items():
            if value is not None:
                setattr(self.limits, name, value)


def event(n: int, mtype: MessageType = MessageType.EVENT, **extra: Any) -> AgentMessage:
    return AgentMessage(
        sender=CLIENT, recipient=SERVER, message_type=mtype, payload={"n": n}, **extra
    )


async def test_a_backend_of_the_eight_methods_and_config_runs_a_worker() -> None:
    backend = ListCoordinator()
    worker = AgentWorker(backend, None, SERVER, poll_interval=0.2, maintenance_interval=0.05)
    attempts: list[int] = []

    @worker.on_event()
    async def fails_once(ctx: MessageContext[dict[str, int]]) -> None:
        attempts.append(ctx.attempts)
        if ctx.payload["n"] == 2 and ctx.attempts == 1:
            raise RuntimeError("once")
        if ctx.payload["n"] == 3:
            raise PermanentError("never")

    @worker.on_request()
    async def double(ctx: MessageContext[dict[str, int]]) -> dict[str, int]:
        return {"double": ctx.payload["n"] * 2}

    await backend.send_many([event(1), event(2), event(3)])
    async with worker:
        # Sent while the worker waits in the default receive_batch (it polls).
        await asyncio.sleep(0.1)
        await backend.send_message(CLIENT, SERVER, event(4, MessageType.REQUEST, reply_to=CLIENT))
        await eventually(lambda: worker.stats.succeeded == 3 and worker.stats.dead_lettered == 1)
    stats = worker.stats
    assert (stats.received, stats.retried, stats.replies, stats.leases_lost) == (5, 1, 1, 0)
    assert sorted(attempts) == [1, 1, 1, 2]
    [(letter, failure, error)] = backend.dead
    assert (letter.message.payload, failure, error) == (
        {"n": 3},
        FailureType.PERMANENT,
        "PermanentError: never",
    )
    # The default reply: a RESPONSE message in the requester's queue.
    [response] = backend.ready[CLIENT]
    assert response.message.message_type is MessageType.RESPONSE
    assert response.message.payload == {"double": 8}
    assert backend.leased == {}
    assert worker.state is WorkerState.STOPPED


async def test_without_lease_extension_a_long_handler_learns_its_lease_is_lost() -> None:
    backend = ListCoordinator()
    worker = AgentWorker(backend, None, SERVER, visibility_timeout=0.1, poll_interval=0.1)
    lost: list[bool] = []

    @worker.on_event()
    async def slow(ctx: MessageContext[Any]) -> None:
        await asyncio.sleep(0.3)
        lost.append(ctx.lease_lost)

    await backend.send_message(CLIENT, SERVER, event(1))
    async with worker:
        await eventually(lambda: worker.stats.succeeded == 1)
    assert lost == [True]
    assert worker.stats.lease_extensions == 0
    assert await backend.extend_lease(SERVER, "t0", 5.0) is False


async def test_a_worker_with_subscriptions_needs_a_backend_that_stores_them() -> None:
    worker = AgentWorker(ListCoordinator(), None, SERVER, subscriptions=[MessageType.EVENT])
    worker.add_handler(_noop, MessageType.EVENT)
    with pytest.raises(NotImplementedError) as caught:
        await worker.start()
    assert str(caught.value) == (
        "ListCoordinator does not implement subscribe (needed by AgentWorker(subscriptions=...))"
    )
    assert worker.state is WorkerState.STOPPED


async def _noop(ctx: MessageContext[Any]) -> None:
    return None


async def test_default_receive_batch_reserves_up_to_count_and_waits_for_block() -> None:
    backend = ListCoordinator()
    await backend.send_many([event(n) for n in range(3)])
    batch = await backend.receive_batch(SERVER, 2)
    assert [r.message.payload["n"] for r in batch] == [0, 1]
    assert [r.message.payload["n"] for r in await backend.receive_batch(SERVER, 5)] == [2]
    assert await backend.receive_batch(SERVER, 5) == []  # no block: at once

    loop = asyncio.get_running_loop()
    started = loop.time()
    backend.receives = 0
    assert await backend.receive_batch(SERVER, 5, block=0.2) == []
    assert loop.time() - started >= 0.2
    assert 2 <= backend.receives <= 7  # it polls every 50 ms

    started = loop.time()
    later = loop.call_later(0.1, backend.ready[SERVER].append, QueueMessage(message=event(9)))
    got = await backend.receive_batch(SERVER, 5, block=5.0)
    assert [r.message.payload["n"] for r in got] == [9]
    assert loop.time() - started < 2.0
    later.cancel()
    with pytest.raises(ConfigurationError, match=r"^count must be at least 1, got 0$"):
        await backend.receive_batch(SERVER, 0)


async def test_default_ack_many_send_many_and_reply() -> None:
    backend = ListCoordinator()
    results = await backend.send_many([event(1), event(2)])
    assert [r.delivered for r in results] == [True, True]
    first, second = await backend.receive_batch(SERVER, 2)
    assert await backend.ack_many(SERVER, [second.token, "unknown", first.token]) == [
        True,
        False,
        True,
    ]
    assert await backend.ack_many(SERVER, []) == []
    # A request without reply_to expects no reply; one with it gets a RESPONSE message.
    assert await backend.reply(SERVER, event(3), {"x": 1}) is False
    request = event(4, MessageType.REQUEST, reply_to=CLIENT, correlation_id="c")
    assert await backend.reply(SERVER, request, error=PermanentError("no")) is True
    [response] = backend.ready[CLIENT]
    assert response.message.correlation_id == "c"
    assert response.message.sender == SERVER


@pytest.mark.parametrize(
    ("method", "args", "needed_by"),
    [
        ("request", (CLIENT, SERVER, {}), "MessageContext.request"),
        ("subscribe", (SERVER, [MessageType.EVENT]), "AgentWorker(subscriptions=...)"),
        ("unsubscribe", ("s",), "AgentWorker(subscriptions=...)"),
        ("publish_event", (CLIENT, event(1)), "MessageContext.publish"),
        ("release_leases", (SERVER,), "crash hand-over"),
        ("queue_stats", (SERVER,), "operations"),
    ],
)
async def test_optional_features_say_they_are_missing(
    method: str, args: tuple[Any, ...], needed_by: str
) -> None:
    with pytest.raises(NotImplementedError) as caught:
        await getattr(ListCoordinator(), method)(*args)
    assert str(caught.value) == (
        f"ListCoordinator does not implement {method} (needed by {needed_by})"
    )


def test_config_and_held_are_required_of_a_backend() -> None:
    class OnlyTheEight(ListCoordinator):
        config = MessageCoordinator.config  # type: ignore[assignment]

    with pytest.raises(TypeError, match="config"):
        OnlyTheEight()  # type: ignore[abstract]
    assert set(MessageCoordinator.__abstractmethods__) == {
        "send_message",
        "broadcast_message",
        "subscribe_to_messages",
        "receive",
        "ack",
        "nack",
        "recover_pending",
        "configure",
        "config",
    }
    assert set(AgentRegistry.__abstractmethods__) == {
        "register",
        "register_id",
        "deregister",
        "heartbeat",
        "get",
        "list_registered",
        "discover",
        "start_heartbeats",
        "stop_heartbeats",
        "held",
    }


class ReadOnlyRegistry(AgentRegistry):
    """A registry that holds nothing: every abstract member, no optional one."""

    async def register(self, agent, *, takeover=False) -> AgentRecord:
        return await self.register_id(agent.agent_id)

    async def register_id(self, agent_id, **options: Any) -> AgentRecord:
        return AgentRecord(
            agent_id=agent_id, name="x", alive=True, status="ok", registered_at=datetime.now(UTC)
        )

    async def deregister(self, agent) -> bool:
        return False

    async def heartbeat(self, agent) -> datetime:
        return datetime.now(UTC)

    async def get(self, agent_id) -> AgentRecord | None:
        return None

    async def list_registered(self) -> list[AgentRecord]:
        return []

    async def discover(self, type=None, capability=None, alive_only=True) -> list[AgentRecord]:
        return []

    def start_heartbeats(self) -> None:
        self.started = True

    async def stop_heartbeats(self) -> None:
        self.started = False

    def held(self) -> list[AgentId]:
        return []


async def test_a_registry_that_cannot_tell_has_no_heartbeats_running() -> None:
    registry = ReadOnlyRegistry()
    assert registry.heartbeats_running is False
    registry.start_heartbeats()
    assert registry.heartbeats_running is False  # the default cannot tell


class HoldingRegistry(ReadOnlyRegistry):
    """Every abstract member, ``held`` from a list: the default ``ownership`` applies."""

    def __init__(self) -> None:
        self.ids: list[AgentId] = []

    async def register_id(self, agent_id, **options: Any) -> AgentRecord:
        self.ids.append(agent_id)
        return await super().register_id(agent_id)

    def held(self) -> list[AgentId]:
        return list(self.ids)


async def test_the_default_ownership_follows_held_and_fences_a_worker() -> None:
    registry = HoldingRegistry()
    assert registry.ownership(SERVER) is Ownership.LOST
    backend = ListCoordinator()
    worker = AgentWorker(backend, registry, SERVER, poll_interval=0.05, maintenance_interval=60)
    handled: list[int] = []

    @worker.on_event()
    async def handle(ctx: MessageContext[dict[str, int]]) -> None:
        handled.append(ctx.payload["n"])

    await backend.send_message(CLIENT, SERVER, event(1))
    async with worker:
        assert registry.ownership(SERVER) is Ownership.HELD
        await eventually(lambda: handled == [1])
        registry.ids.clear()  # taken over: the registry no longer holds it
        await eventually(lambda: worker.state is WorkerState.STOPPED, timeout=2)
        await backend.send_message(CLIENT, SERVER, event(2))
        await asyncio.sleep(0.2)
    assert worker.stop_reason == "registration lost"
    assert handled == [1]
