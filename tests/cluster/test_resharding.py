"""A queue's hash slot moves to another primary while agents send and receive.

On the private Cluster (``conftest.private_cluster``): a producer sends 300 messages to
one agent, a worker handles them, and halfway the queue's slot is migrated key by key
(``CLUSTER SETSLOT ... MIGRATING/IMPORTING``, ``MIGRATE``, then ``SETSLOT ... NODE``), as
``redis-cli --cluster reshard`` does. Calls that meet the moving slot get ``ASK``,
``MOVED`` or ``TRYAGAIN`` (a script whose keys are split between the two nodes); redis-py
follows the first two and the coordinator's guard retries the last. Every message is
handled, none twice, and the queue ends on the new primary.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from tta_agent_coordination import AgentId, AgentMessage, AgentWorker, MessageType
from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.runtime.context import MessageContext
from tta_agent_coordination.settings import CoordinationSettings

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]

SENDER = AgentId("producer", "p1")
TARGET = AgentId("moving", "m1")
TOTAL = 300


async def test_a_queue_keeps_every_message_while_its_slot_moves(private_cluster: str) -> None:
    client = CoordinationSettings(redis_url=private_cluster).redis_client()
    assert isinstance(client, RedisCluster)
    coord = RedisMessageCoordinator(client, key_prefix="reshard", backoff_base=0.05)
    handled: list[int] = []

    async def handle(ctx: MessageContext) -> None:
        handled.append(ctx.message.payload["n"])

    worker = AgentWorker(coord, None, TARGET, maintenance_interval=1.0)
    worker.add_handler(handle, MessageType.EVENT)
    ready_key = coord._core.keys.queue(TARGET).ready[0]  # pyright: ignore[reportPrivateUsage]
    await client.initialize()
    slot = client.keyslot(ready_key)
    source = client.get_node_from_key(ready_key)
    assert source is not None
    target = next(n for n in client.get_primaries() if n.name != source.name)
    moved = asyncio.Event()
    migration: asyncio.Task[None] | None = None
    try:
        await worker.start()
        for n in range(TOTAL):
            message = AgentMessage(
                sender=SENDER,
                recipient=TARGET,
                message_type=MessageType.EVENT,
                payload={"n": n},
                message_id=f"reshard-{n:06d}",
            )
            # An UNKNOWN or UNAVAILABLE send goes again, same id: while the slot is split
            # between the two nodes every script on the queue gets TRYAGAIN, until the
            # migration moved the queue's last key (seconds on a busy machine).
            deadline = asyncio.get_running_loop().time() + 60
            while not (await coord.send_message(SENDER, TARGET, message)).delivered:
                if migration is not None and migration.done() and migration.exception():
                    raise AssertionError("the slot migration failed") from migration.exception()
                if asyncio.get_running_loop().time() > deadline:
                    pytest.fail(f"message {n} was never enqueued")
                await asyncio.sleep(0.05)
            if n == TOTAL // 2:
                migration = asyncio.create_task(_migrate_slot(client, slot, source, target))
                migration.add_done_callback(lambda _: moved.set())
            await asyncio.sleep(0.002)
        await asyncio.wait_for(moved.wait(), 60)
        assert migration is not None
        await migration  # its errors, if any
        for _ in range(600):
            if len(set(handled)) == TOTAL:
                break
            await asyncio.sleep(0.05)
        assert sorted(set(handled)) == list(range(TOTAL))
        assert len(handled) == TOTAL, "a message was handled twice"
        await client.nodes_manager.initialize()
        assert client.get_node_from_key(ready_key).name == target.name
    finally:
        await worker.stop()
        await coord.aclose()
        await client.aclose()


async def _migrate_slot(
    client: RedisClient, slot: int, source: ClusterNode, target: ClusterNode
) -> None:
    """Move ``slot`` from ``source`` to ``target`` as ``redis-cli --cluster reshard`` does."""
    assert isinstance(client, RedisCluster)
    source_id = _text(await _admin(client, source, "CLUSTER", "MYID"))
    target_id = _text(await _admin(client, target, "CLUSTER", "MYID"))
    await _admin(client, target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    await _admin(client, source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    while True:
        keys = await _admin(client, source, "CLUSTER", "GETKEYSINSLOT", slot, 1)
        if not keys:
            break
        # One key at a time, slowly: the run meets the slot half-moved for a while.
        await _admin(
            client, source, "MIGRATE", target.host, target.port, "", 0, 10_000, "KEYS", *keys
        )
        await asyncio.sleep(0.05)
    for node in client.get_primaries():
        await _admin(client, node, "CLUSTER", "SETSLOT", slot, "NODE", target_id)


async def _admin(client: RedisCluster, node: ClusterNode, *command: str | int) -> Any:
    """Run one admin command on ``node``, tried again on a Redis error (a busy machine).

    A ``MIGRATE`` that timed out may have restored the key on the target before the
    source deleted its own copy; the source's copy is the current one (the key still
    took writes there), so a second attempt replaces the target's. The last error is
    raised as it is, and names the command that failed.
    """
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(5),
        wait=wait_fixed(0.5),
        retry=retry_if_exception_type(RedisError),
        reraise=True,
    ):
        with attempt:
            args: list[str | int] = list(command)
            if args[0] == "MIGRATE" and attempt.retry_state.attempt_number > 1:
                args.insert(args.index("KEYS"), "REPLACE")
            try:
                return await client.execute_command(*args, target_nodes=node)
            except RedisError as exc:
                raise type(exc)(f"{' '.join(map(str, args[:3]))} on {node.name}: {exc}") from exc
    raise AssertionError("unreachable: the last attempt returns or raises")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
