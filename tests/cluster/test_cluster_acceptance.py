"""The coordinator, registry, breakers and a worker on the local Redis Cluster.

Every queue's keys share one hash tag, so every script runs in one slot; the queue
index, subscriptions, registry and breakers have tags of their own, on other nodes.
These tests prove that nothing assumes one node: pipelined scripts are routed per node,
SCANs walk every primary, and a blocked receive waits on the node of its streams.
"""

from __future__ import annotations

import asyncio
from importlib import resources

import pytest

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    AgentWorker,
    FailureType,
    MessageContext,
    MessagePriority,
    MessageType,
)
from tta_agent_coordination.cli.inspect import read_breakers
from tta_agent_coordination.clients import RedisClient, is_cluster
from tta_agent_coordination.errors import CircuitBreakerOpenError
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.redis.agent_registry.scripts import parse_peek, peek_call
from tta_agent_coordination.redis.breaker_store import RedisBreakerStore
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.lua import ScriptSet
from tta_agent_coordination.redis.topology import describe_topology, scan_pages
from tta_agent_coordination.resilience import CircuitBreaker, CircuitBreakerConfig, CircuitState
from tta_agent_coordination.store import PendingMessage

pytestmark = [pytest.mark.cluster]

SENDER = AgentId("caller", "c1")
# Agents whose queues hash to different slots (and, on a 3-primary cluster, nodes).
AGENTS = [AgentId("alpha", "a1"), AgentId("beta", "b1"), AgentId("gamma", "g1")]


def msg(n: int, recipient: AgentId, **kw: object) -> AgentMessage:
    return AgentMessage(
        message_id=f"msg-{n:04d}",
        sender=kw.pop("sender", SENDER),  # type: ignore[arg-type]
        recipient=recipient,
        message_type=kw.pop("message_type", MessageType.REQUEST),  # type: ignore[arg-type]
        payload={"n": n},
        **kw,  # type: ignore[arg-type]
    )


def coordinator(client: RedisClient, prefix: str, **kw: object) -> RedisMessageCoordinator:
    return RedisMessageCoordinator(client, key_prefix=prefix, backoff_base=0.01, **kw)  # type: ignore[arg-type]


@pytest.fixture
def scripts_run(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The names of the Lua scripts loaded (each right before its first run)."""
    seen: set[str] = set()
    original = ScriptSet.__getitem__

    def spy(self: ScriptSet, name: str):  # type: ignore[no-untyped-def]
        seen.add(name)
        return original(self, name)

    monkeypatch.setattr(ScriptSet, "__getitem__", spy)
    return seen


async def test_the_client_is_a_cluster_of_three_primaries(cluster_client: RedisClient) -> None:
    assert is_cluster(cluster_client)
    topology = await describe_topology(cluster_client)
    assert topology.kind == "cluster"
    assert len(topology.primaries) == 3
    assert "cluster with 3 primaries" in topology.describe()


async def test_every_lua_script_runs_on_the_cluster(
    cluster_client: RedisClient, cluster_prefix: str, scripts_run: set[str]
) -> None:
    coord = coordinator(cluster_client, cluster_prefix, retry_attempts=1)
    target = AGENTS[0]
    try:
        # send (batch over several queues: the pipelined path), receive, extend, ack
        results = await coord.send_many([msg(i, a) for i, a in enumerate(AGENTS)])
        assert all(r.delivered for r in results)
        got = await coord.receive(target, visibility_timeout=5)
        assert got is not None
        assert await coord.extend_lease(target, got.token, 5)
        assert await coord.ack(target, got.token)
        # a scheduled send, cancelled while it waits in the delayed set
        later = await coord.send_message(SENDER, target, msg(11, target), delay_s=600)
        assert later.scheduled_for is not None
        assert await coord.cancel_scheduled(target, msg(11, target).message_id)
        # nack to the DLQ, replay, purge, stats
        await coord.send_message(SENDER, target, msg(10, target))
        got = await coord.receive(target, visibility_timeout=5)
        assert got is not None
        assert await coord.nack(target, got.token, FailureType.PERMANENT, "boom")
        assert (await coord.queue_stats(target)).dead == 1
        assert await coord.replay_dead_letters(target) == 1
        got = await coord.receive(target, visibility_timeout=5)
        assert got is not None
        assert await coord.nack(target, got.token, FailureType.PERMANENT, "again")
        assert await coord.purge_dead_letters(target) == 1
        # malformed entries are dead-lettered on receive: by the script (no fields it
        # knows), and by queue_dlq_reject (an envelope that does not decode)
        ready = coord.keys.queue(target).ready[1]
        await cluster_client.xadd(ready, {"junk": "1"})
        bad = {"i": "msg-bad1", "m": "{not json", "a": "0", "e": "", "x": "0", "t": "0"}
        await cluster_client.xadd(ready, bad)  # pyright: ignore[reportArgumentType]
        assert await coord.receive(target, visibility_timeout=5) is None
        assert await coord.receive(target, visibility_timeout=5) is None
        assert (await coord.queue_stats(target)).dead == 2
        # restore from a store's view, recover (and sweep the dedupe sets it leaves)
        pending = PendingMessage(
            message_id="msg-restored",
            recipient=AGENTS[1],
            envelope=msg(99, AGENTS[1]).model_dump_json(),
            priority=MessagePriority.NORMAL,
            attempts=0,
            last_error=None,
            expires_at_ms=0,
            incarnation=1,
        )
        assert await coord.restore_messages([pending]) == [True]
        for agent in AGENTS:
            while (got := await coord.receive(agent, visibility_timeout=5)) is not None:
                assert await coord.ack(agent, got.token)
        await coord.purge_dead_letters(target)
        assert await coord.recover_pending(None) == 0
        # request/reply: reply_push
        server = AGENTS[2]

        async def answer() -> None:
            got = None
            while got is None:
                got = await coord.receive(server, visibility_timeout=5)
                await asyncio.sleep(0.01)
            await coord.reply(server, got.message, {"ok": True})
            await coord.ack(server, got.token)

        task = asyncio.create_task(answer())
        reply = await coord.request(SENDER, server, {"q": 1}, timeout=10)
        await task
        assert reply.payload == {"ok": True}
    finally:
        await coord.aclose()

    registry = RedisAgentRegistry(cluster_client, key_prefix=cluster_prefix, heartbeat_ttl_s=1)
    try:
        await registry.register_id(AGENTS[0], capabilities=["build"])
        # registry_peek runs when an agent with exported state registers: call it as is
        peek = peek_call(registry.keys, AGENTS[0])
        raw = await ScriptSet(cluster_client).run(peek.script, peek.keys, peek.args)
        assert parse_peek(raw).held_for_ms > 0
        await registry.heartbeat(AGENTS[0])
        assert await registry.get(AGENTS[0]) is not None
        await registry.register_id(AGENTS[1])
        assert await registry.deregister(AGENTS[1])
        assert await registry.seed_state(AGENTS[2], {"turn": 1}, replace=True)
        await registry.stop_heartbeats()
        await asyncio.sleep(1.2)
        assert AGENTS[0] in await registry.reap_expired()
    finally:
        await registry.aclose()

    store = RedisBreakerStore(cluster_client, key_prefix=cluster_prefix, timeout_s=2)
    breaker = CircuitBreaker("cl", CircuitBreakerConfig(failure_threshold=1), store=store)

    async def ok() -> int:
        return 1

    async def down() -> None:
        raise ConnectionError("down")

    assert await breaker.call(ok) == 1
    with pytest.raises(ConnectionError):
        await breaker.call(down)
    await breaker.areset()

    lua = resources.files("tta_agent_coordination.redis").joinpath("scripts")
    every = {
        p.name.removesuffix(".lua")
        for p in lua.iterdir()
        if p.name.endswith(".lua") and not p.name.endswith("_common.lua")
    }
    assert every - scripts_run == set()


async def test_coordinator_path_across_nodes(
    cluster_client: RedisClient, cluster_prefix: str
) -> None:
    coord = coordinator(cluster_client, cluster_prefix, retry_attempts=1)
    a, b, c = AGENTS
    try:
        # a blocked receive on an empty queue wakes when a message arrives (per-node read)
        waiting = asyncio.create_task(coord.receive_batch(a, 5, visibility_timeout=5, block=5))
        await asyncio.sleep(0.2)
        assert (await coord.send_message(SENDER, a, msg(1, a))).delivered
        woke = await asyncio.wait_for(waiting, 5)
        assert [m.message.message_id for m in woke] == ["msg-0001"]
        # transient nack: redelivered after the backoff, then the DLQ after the retries
        assert await coord.nack(a, woke[0].token, FailureType.TRANSIENT, "flaky")
        again = await coord.receive_batch(a, 1, visibility_timeout=5, block=3)
        assert [m.attempts for m in again] == [2]
        assert await coord.nack(a, again[0].token, FailureType.TRANSIENT, "flaky")
        assert (await coord.queue_stats(a)).dead == 1
        # broadcast over three slots; a lease that expires comes back through recover_pending
        results = await coord.broadcast_message(SENDER, msg(2, b), [b, c])
        assert [r.delivered for r in results] == [True, True]
        leased = await coord.receive(b, visibility_timeout=0.05)
        assert leased is not None
        await asyncio.sleep(0.1)
        assert await coord.recover_pending(None) >= 1
        stats = await coord.queue_stats(b)
        assert (stats.leased, stats.ready[MessagePriority.NORMAL]) == (0, 1)
        assert set(await coord.known_queues()) >= {a, b, c}
        # subscriptions: an event reaches every subscriber's queue
        await coord.subscribe(b, [MessageType.EVENT])
        await coord.subscribe(c, [MessageType.EVENT])
        event = msg(3, a, sender=a, message_type=MessageType.EVENT)
        published = await coord.publish_event(a, event)
        assert sorted(str(r.recipient) for r in published) == ["beta:b1", "gamma:g1"]
    finally:
        await coord.aclose()


async def test_a_dead_instances_type_queue_leases_are_released_on_the_cluster(
    cluster_client: RedisClient, cluster_prefix: str
) -> None:
    # The instance's queue {alpha:a1} and its type queue {alpha} are in different slots:
    # the release runs one script on each, the lessee records in the type queue's slot.
    coord = coordinator(cluster_client, cluster_prefix)
    instance, other = AGENTS[0], AgentId("alpha", "a2")
    typed = instance.type_queue
    try:
        results = await coord.send_many([msg(1, typed), msg(2, typed), msg(3, instance)])
        assert all(r.delivered for r in results)
        held = await coord.receive_batch(instance, 3, visibility_timeout=60, also=[typed])
        assert [h.queue for h in held] == [instance, typed, typed]
        assert await coord.release_leases(instance) == 3
        got = await coord.receive_batch(other, 2, visibility_timeout=60, also=[typed])
        assert [g.message.message_id for g in got] == ["msg-0001", "msg-0002"]
        assert await coord.ack_many(typed, [g.token for g in got]) == [True, True]
        keys = coord.keys.queue(typed)
        assert await cluster_client.exists(keys.lessees, keys.lessee_index) == 0
    finally:
        await coord.aclose()


async def test_registry_on_the_cluster(cluster_client: RedisClient, cluster_prefix: str) -> None:
    registry = RedisAgentRegistry(cluster_client, key_prefix=cluster_prefix)
    try:
        for agent in AGENTS:
            await registry.register_id(agent, capabilities=["build"] if agent != AGENTS[2] else [])
        listed = await registry.list_registered()
        assert sorted(str(r.agent_id) for r in listed) == sorted(str(a) for a in AGENTS)
        assert all(r.alive for r in listed)
        found = await registry.discover(capability="build")
        assert sorted(str(r.agent_id) for r in found) == ["alpha:a1", "beta:b1"]
        assert [e.kind for e in await registry.events(limit=3)]
    finally:
        await registry.aclose()


async def test_breaker_state_is_shared_on_the_cluster(
    cluster_client: RedisClient, cluster_prefix: str
) -> None:
    config = CircuitBreakerConfig(failure_threshold=1, timeout_seconds=60)
    # two breakers of one name, each with a store of its own: as in two processes
    first, second = (
        CircuitBreaker(
            "depx",
            config,
            store=RedisBreakerStore(cluster_client, key_prefix=cluster_prefix, timeout_s=2),
        )
        for _ in range(2)
    )

    async def boom() -> None:
        raise ConnectionError("down")

    async def ok() -> int:
        return 1

    with pytest.raises(ConnectionError):
        await first.call(boom)
    assert first.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenError):
        await second.call(ok)
    # the breaker scan (tta-coord inspect) finds it: a SCAN of every primary
    names = [b["name"] for b in await read_breakers(cluster_client, KeySpace(cluster_prefix))]
    assert names == ["depx"]


async def test_agent_worker_end_to_end(cluster_client: RedisClient, cluster_prefix: str) -> None:
    coord = coordinator(cluster_client, cluster_prefix)
    registry = RedisAgentRegistry(cluster_client, key_prefix=cluster_prefix, coordinator=coord)
    worker = AgentWorker(coord, registry, AGENTS[1], concurrency=2, visibility_timeout=5)
    seen: list[int] = []

    @worker.on_request()
    async def double(ctx: MessageContext[dict[str, int]]) -> int:
        seen.append(ctx.payload["n"])
        return ctx.payload["n"] * 2

    try:
        async with worker:
            replies = await asyncio.gather(
                *(coord.request(SENDER, AGENTS[1], {"n": n}, timeout=10) for n in range(5))
            )
            assert [r.payload for r in replies] == [{"result": n * 2} for n in range(5)]
            assert [r.agent_id for r in await registry.list_registered()] == [AGENTS[1]]
        assert sorted(seen) == list(range(5))
        stats = await coord.queue_stats(AGENTS[1])
        assert (stats.unsettled, stats.dead) == (0, 0)
    finally:
        await registry.aclose()
        await coord.aclose()


async def test_scan_pages_walks_every_primary(
    cluster_client: RedisClient, cluster_prefix: str
) -> None:
    keys = [f"{cluster_prefix}:{{k{i}}}:x" for i in range(30)]
    for key in keys:
        await cluster_client.set(key, "1")
    nodes = {cluster_client.get_node_from_key(k).name for k in keys}  # pyright: ignore[reportAttributeAccessIssue]
    assert len(nodes) == 3  # the keys really are spread over the primaries
    found = [
        k
        async for page in scan_pages(cluster_client, match=f"{cluster_prefix}:*", count=5)
        for k in page
    ]
    assert sorted(k.decode() for k in found) == sorted(keys)
