"""The queue invariants (docs/architecture.md, "How the invariants are tested"), checked
against a model and under chaos, on both backends.
"""

import asyncio
import random
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tta_agent_coordination.errors import CoordinatorUnavailableError
from tta_agent_coordination.models import AgentId, FailureType, MessagePriority
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import (
    RealRedisUnavailableError,
    delete_prefix,
    fake_redis,
    real_redis,
    unique_prefix,
)
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail

from .conftest import RECIPIENT, SENDER, make_message

QUEUE_SIZE = 6
RETRIES = 2
PRIORITIES = [MessagePriority.HIGH, MessagePriority.NORMAL, MessagePriority.LOW]
TYPE = RECIPIENT.type_queue
INSTANCES = [RECIPIENT, AgentId(RECIPIENT.type, "w2")]
QUEUES = [*INSTANCES, TYPE]


def _deadline_ms(iso: str | None) -> int:
    assert iso is not None
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


Key = tuple[AgentId, str]
"""A lease: the queue it was taken from and its token (tokens are unique per queue only)."""


@dataclass
class _Queue:
    """The model of one queue: an instance queue or the type queue."""

    ready: dict[MessagePriority, list[str]] = field(
        default_factory=lambda: {p: [] for p in PRIORITIES}
    )
    priority: dict[str, MessagePriority] = field(default_factory=dict[str, MessagePriority])
    deliveries: dict[str, int] = field(default_factory=dict[str, int])
    acked: set[str] = field(default_factory=set[str])
    dead: set[str] = field(default_factory=set[str])

    def ready_count(self) -> int:
        return sum(len(v) for v in self.ready.values())


class QueueModel(RuleBasedStateMachine):
    """Random send/receive/ack/nack/expire/recover sequences against a simple model.

    Two instances of one type (``W1``, ``W2``) compete: each receives from its own queue
    first, then from the type queue ``TYPE`` (``receive_batch(..., also=[TYPE])``), and
    settles on the queue each delivery came from. Sends go to any of the three queues.
    DESIGN §6: no loss, exclusive leases, order, retry into the DLQ, exact
    backpressure, idempotent settles (a token settled on a queue it was not leased
    from changes nothing).
    """

    backend = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.prefix = unique_prefix("hyp")
        self.redis = self.run(real_redis()) if self.backend == "real" else fake_redis()
        self.coord = RedisMessageCoordinator(
            self.redis,
            key_prefix=self.prefix,
            queue_size=QUEUE_SIZE,
            retry_attempts=RETRIES,
            backoff_base=0,
            backoff_max=0,
            dedupe_window_s=3600,
            maintenance_batch=2,
        )
        self.seq = 0
        self.queues: dict[AgentId, _Queue] = {q: _Queue() for q in QUEUES}
        self.leased: dict[Key, tuple[str, int]] = {}  # (queue, token) -> (id, deadline ms)
        self.lessee: dict[Key, AgentId] = {}  # a type-queue lease -> the instance holding it
        self.settled: list[Key] = []

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(delete_prefix(self.redis, self.prefix))
        self.run(self.redis.aclose())
        self.loop.close()

    def _unsettled(self, queue: AgentId) -> int:
        return self.queues[queue].ready_count() + sum(1 for q, _ in self.leased if q == queue)

    def _return(self, queue: AgentId, mid: str) -> None:
        model = self.queues[queue]
        if model.deliveries[mid] > RETRIES:
            model.dead.add(mid)
        else:
            model.ready[model.priority[mid]].append(mid)

    def _keys(self) -> list[Key]:
        return sorted(self.leased, key=str) + self.settled

    @rule(queue=st.sampled_from(QUEUES), priority=st.sampled_from(PRIORITIES), data=st.data())
    def send(self, queue, priority, data) -> None:
        model = self.queues[queue]
        if model.priority and data.draw(st.booleans()):
            mid = data.draw(st.sampled_from(sorted(model.priority)))
        else:
            self.seq += 1
            mid = f"msg-{self.seq:06d}"
        message = make_message(self.seq, priority=priority, message_id=mid, recipient=queue)
        result = self.run(self.coord.send_message(SENDER, queue, message))
        if mid in model.priority:
            assert result.delivered
            assert result.duplicate
        elif self._unsettled(queue) >= QUEUE_SIZE:
            assert not result.delivered
            assert result.error == "queue full"
        else:
            assert result.delivered
            assert not result.duplicate
            model.priority[mid] = priority
            model.deliveries[mid] = 0
            model.ready[priority].append(mid)

    @rule(consumer=st.sampled_from(INSTANCES), count=st.integers(1, 3))
    def receive(self, consumer, count) -> None:
        got = self.run(
            self.coord.receive_batch(consumer, count, visibility_timeout=60, also=[TYPE])
        )
        expected: list[tuple[AgentId, str]] = []
        for queue in (consumer, TYPE):  # own queue first, priorities within each
            for p in PRIORITIES:
                ready = self.queues[queue].ready[p]
                while ready and len(expected) < count:
                    expected.append((queue, ready.pop(0)))
        assert [(g.queue, g.message.message_id) for g in got] == expected
        for g, (queue, mid) in zip(got, expected, strict=True):
            model = self.queues[queue]
            model.deliveries[mid] += 1
            assert g.attempts == model.deliveries[mid]
            assert (queue, g.token) not in self.leased
            # exclusive lease: the message is held by no one else
            assert (queue, mid) not in {(q, m) for (q, _), (m, _) in self.leased.items()}
            self.leased[(queue, g.token)] = (mid, _deadline_ms(g.visibility_deadline))
            if queue == TYPE:
                self.lessee[(queue, g.token)] = consumer

    def _settle_on(self, data) -> tuple[Key, AgentId]:
        """A lease (or a settled one) and the queue to settle it on: usually its own."""
        key = data.draw(st.sampled_from(self._keys()))
        queue = data.draw(st.sampled_from([key[0], key[0], *QUEUES]))
        return key, queue

    @precondition(lambda self: self.leased or self.settled)
    @rule(data=st.data())
    def ack(self, data) -> None:
        (_, token), queue = self._settle_on(data)
        done = self.run(self.coord.ack(queue, token))
        assert done == ((queue, token) in self.leased)
        if done:
            self.queues[queue].acked.add(self.leased.pop((queue, token))[0])
            self.lessee.pop((queue, token), None)
            self.settled.append((queue, token))

    @precondition(lambda self: self.leased or self.settled)
    @rule(data=st.data(), permanent=st.booleans())
    def nack(self, data, permanent) -> None:
        (_, token), queue = self._settle_on(data)
        failure = FailureType.PERMANENT if permanent else FailureType.TRANSIENT
        done = self.run(self.coord.nack(queue, token, failure, "boom"))
        assert done == ((queue, token) in self.leased)
        if done:
            mid, _ = self.leased.pop((queue, token))
            self.lessee.pop((queue, token), None)
            self.settled.append((queue, token))
            if permanent:
                self.queues[queue].dead.add(mid)
            else:
                self._return(queue, mid)

    @precondition(lambda self: self.leased)
    @rule(data=st.data())
    def expire_one(self, data) -> None:
        """A consumer crashed: its lease runs out, then recovery runs."""
        queue, token = data.draw(st.sampled_from(sorted(self.leased, key=str)))
        leases = self.coord.keys.queue(queue).leases
        self.run(self.redis.zadd(leases, {token: 0}, xx=True))
        moved = self.run(self.coord.recover_pending(queue))
        assert moved == 1
        mid, _ = self.leased.pop((queue, token))
        self.lessee.pop((queue, token), None)
        self.settled.append((queue, token))
        self._return(queue, mid)

    def _release(self, keys: list[Key]) -> None:
        """Return the leases ``keys`` of one queue, in lease order, as a release does."""
        order = sorted(keys, key=lambda key: (self.leased[key][1], key[1]))
        for key in order:
            mid, _ = self.leased.pop(key)
            self.lessee.pop(key, None)
            self.settled.append(key)
            self._return(key[0], mid)

    @rule(queue=st.sampled_from([TYPE]))
    def release_all(self, queue) -> None:
        """No instance of the type runs: every lease of the type queue returns at once."""
        keys = [key for key in self.leased if key[0] == queue]
        assert self.run(self.coord.release_leases(queue)) == len(keys)
        self._release(keys)

    @rule(instance=st.sampled_from(INSTANCES))
    def instance_dies(self, instance) -> None:
        """An instance was declared dead: its leases return at once, in lease order.

        Those of its own queue, and those it held in the type queue (its receives recorded
        it as their lessee); the other instance's leases there stay leased.
        """
        own = [key for key in self.leased if key[0] == instance]
        typed = [key for key in self.leased if self.lessee.get(key) == instance]
        assert self.run(self.coord.release_leases(instance)) == len(own) + len(typed)
        self._release(own)
        self._release(typed)

    @invariant()
    def matches_the_model(self) -> None:
        for queue, model in self.queues.items():
            stats = self.run(self.coord.queue_stats(queue))
            assert stats.ready == {p: len(model.ready[p]) for p in PRIORITIES}
            assert stats.leased == sum(1 for q, _ in self.leased if q == queue)
            assert stats.delayed == 0
            assert stats.dead == len(model.dead)
            # no loss: every accepted message is acked, dead, or still queued/leased
            assert len(model.priority) == len(model.acked) + len(model.dead) + self._unsettled(
                queue
            )
        # The lessee records follow the type queue's leases exactly (bounded by them).
        keys = self.coord.keys.queue(TYPE)
        assert self.run(self.redis.hlen(keys.lessees)) == len(self.lessee)
        assert self.run(self.redis.zcard(keys.lessee_index)) == len(self.lessee)


def _run_machine(backend: str, examples: int) -> None:
    if backend == "real":
        probe = asyncio.new_event_loop()
        try:
            probe.run_until_complete(_probe_real())
        except RealRedisUnavailableError as exc:
            skip_or_fail(str(exc))
        finally:
            probe.close()
    machine = type(f"QueueModel_{backend}", (QueueModel,), {"backend": backend})
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine.TestCase().runTest()


async def _probe_real() -> None:
    client = await real_redis()
    await client.aclose()


def test_queue_matches_model_on_fakeredis():
    _run_machine("fake", 60)


@pytest.mark.real_redis
def test_queue_matches_model_on_real_redis():
    _run_machine("real", 25)


async def test_no_loss_when_consumers_are_cancelled_mid_operation(coordination_redis, key_prefix):
    # Consumers poll rather than block: a cancelled blocking XREAD can wedge a fakeredis
    # socket (and a redis-py connection) on Python 3.11, and that read changes no state.
    # Every state-changing call (send, receive, ack, nack scripts) is still a kill point.
    coord = RedisMessageCoordinator(
        coordination_redis,
        key_prefix=key_prefix,
        retry_attempts=1_000,
        backoff_base=0,
        backoff_max=0,
        dedupe_window_s=3600,
    )
    rng = random.Random(1234)
    total = 400
    sent = {make_message(n).message_id for n in range(total)}
    acked: set[str] = set()

    async def produce(start: int) -> None:
        for n in range(start, total, 4):
            if n % 3:
                await coord.send_message(SENDER, RECIPIENT, make_message(n))
            else:
                await coord.send_many([make_message(n)])

    async def consume() -> None:
        while True:
            try:
                batch = await coord.receive_batch(
                    RECIPIENT, rng.randint(1, 5), visibility_timeout=0.3
                )
            except CoordinatorUnavailableError:
                continue  # a dropped connection: a real consumer retries
            if not batch:
                await asyncio.sleep(0.01)
            await asyncio.sleep(rng.random() * 0.005)
            for item in batch:
                roll = rng.random()
                try:
                    if roll < 0.6:
                        if await coord.ack(RECIPIENT, item.token):
                            assert item.message.message_id not in acked  # never settled twice
                            acked.add(item.message.message_id)
                    elif roll < 0.8:
                        await coord.nack(RECIPIENT, item.token, error="flaky")
                except CoordinatorUnavailableError:
                    break
                # else: dropped on the floor, as by a consumer that crashed

    producers = [asyncio.create_task(produce(i)) for i in range(4)]
    consumers = {asyncio.create_task(consume()) for _ in range(6)}
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + 2.5
    while loop.time() < stop_at:
        await asyncio.sleep(rng.random() * 0.02)
        victim = rng.choice(sorted(consumers, key=id))
        victim.cancel()  # killed mid-operation, wherever it was
        consumers.discard(victim)
        consumers.add(asyncio.create_task(consume()))
    await asyncio.gather(*producers)
    for task in consumers:
        task.cancel()
    _, stuck = await asyncio.wait(consumers, timeout=10)
    assert not stuck

    # Ground truth from Redis: a settled message's dedupe entry holds an expiry, an
    # unsettled one the "never" marker (a consumer killed right after its ack never
    # learnt that it succeeded, so the local set can only be a subset).
    dedupe = coord.keys.queue(RECIPIENT).dedupe

    async def settled_ids() -> set[str]:
        entries = await coordination_redis.zrange(dedupe, 0, -1, withscores=True)
        return {m.decode() for m, score in entries if score < 2**53 - 1}

    stats = await coord.queue_stats(RECIPIENT)
    settled = await settled_ids()
    assert acked <= settled
    assert len(settled) + stats.unsettled == total  # nothing lost (no dead: 1000 retries)
    assert stats.dead == 0
    await coord.release_leases(RECIPIENT)
    deadline = loop.time() + 20
    while len(settled) < total and loop.time() < deadline:
        batch = await coord.receive_batch(RECIPIENT, 50, block=0.2)
        await coord.ack_many(RECIPIENT, [item.token for item in batch])
        settled = await settled_ids()
    assert settled == sent
    final = await coord.queue_stats(RECIPIENT)
    assert final.unsettled == 0
    assert final.dead == 0
