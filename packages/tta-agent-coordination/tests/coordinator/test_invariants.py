"""The queue invariants (docs/architecture.md, "How the invariants are tested"), checked
against a model and under chaos, on both backends.
"""

import asyncio
import random
from datetime import datetime

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tta_agent_coordination.errors import CoordinatorUnavailableError
from tta_agent_coordination.models import FailureType, MessagePriority
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import (
    RealRedisUnavailableError,
    delete_prefix,
    fake_redis,
    real_redis,
    real_redis_required,
    unique_prefix,
)

from .conftest import RECIPIENT, SENDER, make_message

QUEUE_SIZE = 6
RETRIES = 2
PRIORITIES = [MessagePriority.HIGH, MessagePriority.NORMAL, MessagePriority.LOW]


def _deadline_ms(iso: str | None) -> int:
    assert iso is not None
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


class QueueModel(RuleBasedStateMachine):
    """Random send/receive/ack/nack/expire/recover sequences against a simple model."""

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
        self.priority: dict[str, MessagePriority] = {}
        self.ready: dict[MessagePriority, list[str]] = {p: [] for p in PRIORITIES}
        self.leased: dict[str, tuple[str, int]] = {}  # token -> (message id, deadline ms)
        self.deliveries: dict[str, int] = {}
        self.accepted: set[str] = set()
        self.acked: set[str] = set()
        self.dead: set[str] = set()
        self.settled_tokens: list[str] = []

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(delete_prefix(self.redis, self.prefix))
        self.run(self.redis.aclose())
        self.loop.close()

    def _unsettled(self) -> int:
        return sum(len(v) for v in self.ready.values()) + len(self.leased)

    def _return(self, mid: str) -> None:
        if self.deliveries[mid] > RETRIES:
            self.dead.add(mid)
        else:
            self.ready[self.priority[mid]].append(mid)

    @rule(priority=st.sampled_from(PRIORITIES), data=st.data())
    def send(self, priority, data) -> None:
        if self.priority and data.draw(st.booleans()):
            mid = data.draw(st.sampled_from(sorted(self.priority)))
        else:
            self.seq += 1
            mid = f"msg-{self.seq:06d}"
        message = make_message(self.seq, priority=priority, message_id=mid)
        result = self.run(self.coord.send_message(SENDER, RECIPIENT, message))
        if mid in self.accepted:
            assert result.delivered
            assert result.duplicate
        elif self._unsettled() >= QUEUE_SIZE:
            assert not result.delivered
            assert result.error == "queue full"
        else:
            assert result.delivered
            assert not result.duplicate
            self.accepted.add(mid)
            self.priority[mid] = priority
            self.deliveries[mid] = 0
            self.ready[priority].append(mid)

    @rule(count=st.integers(1, 3))
    def receive(self, count) -> None:
        got = self.run(self.coord.receive_batch(RECIPIENT, count, visibility_timeout=60))
        expected = []
        for p in PRIORITIES:
            while self.ready[p] and len(expected) < count:
                expected.append(self.ready[p].pop(0))
        assert [g.message.message_id for g in got] == expected
        for g, mid in zip(got, expected, strict=True):
            self.deliveries[mid] += 1
            assert g.attempts == self.deliveries[mid]
            assert g.token not in self.leased
            self.leased[g.token] = (mid, _deadline_ms(g.visibility_deadline))

    @precondition(lambda self: self.leased or self.settled_tokens)
    @rule(data=st.data())
    def ack(self, data) -> None:
        token = data.draw(st.sampled_from(sorted(self.leased) + self.settled_tokens))
        done = self.run(self.coord.ack(RECIPIENT, token))
        assert done == (token in self.leased)
        if done:
            self.acked.add(self.leased.pop(token)[0])
            self.settled_tokens.append(token)

    @precondition(lambda self: self.leased or self.settled_tokens)
    @rule(data=st.data(), permanent=st.booleans())
    def nack(self, data, permanent) -> None:
        token = data.draw(st.sampled_from(sorted(self.leased) + self.settled_tokens))
        failure = FailureType.PERMANENT if permanent else FailureType.TRANSIENT
        done = self.run(self.coord.nack(RECIPIENT, token, failure, "boom"))
        assert done == (token in self.leased)
        if done:
            mid, _ = self.leased.pop(token)
            self.settled_tokens.append(token)
            if permanent:
                self.dead.add(mid)
            else:
                self._return(mid)

    @precondition(lambda self: self.leased)
    @rule(data=st.data())
    def expire_one(self, data) -> None:
        """A consumer crashed: its lease runs out, then recovery runs."""
        token = data.draw(st.sampled_from(sorted(self.leased)))
        leases = self.coord.keys.queue(RECIPIENT).leases
        self.run(self.redis.zadd(leases, {token: 0}, xx=True))
        moved = self.run(self.coord.recover_pending(RECIPIENT))
        assert moved == 1
        mid, _ = self.leased.pop(token)
        self.settled_tokens.append(token)
        self._return(mid)

    @rule()
    def release_all(self) -> None:
        """The agent was declared dead: every lease returns at once, in lease order."""
        order = sorted(self.leased.items(), key=lambda item: (item[1][1], item[0]))
        assert self.run(self.coord.release_leases(RECIPIENT)) == len(order)
        for token, (mid, _) in order:
            del self.leased[token]
            self.settled_tokens.append(token)
            self._return(mid)

    @invariant()
    def matches_the_model(self) -> None:
        stats = self.run(self.coord.queue_stats(RECIPIENT))
        assert stats.ready == {p: len(self.ready[p]) for p in PRIORITIES}
        assert stats.leased == len(self.leased)
        assert stats.delayed == 0
        assert stats.dead == len(self.dead)
        # no loss: every accepted message is acked, dead, or still queued/leased
        assert len(self.accepted) == len(self.acked) + len(self.dead) + self._unsettled()


def _run_machine(backend: str, examples: int) -> None:
    if backend == "real":
        probe = asyncio.new_event_loop()
        try:
            probe.run_until_complete(_probe_real())
        except RealRedisUnavailableError as exc:
            if real_redis_required():
                pytest.fail(str(exc))
            pytest.skip(str(exc))
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
