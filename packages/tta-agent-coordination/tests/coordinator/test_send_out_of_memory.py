"""A Redis over ``maxmemory`` (``noeviction``) refuses sends and restores as a whole.

Issue 23 item 4: the send and restore scripts used to start with a write that Redis does
not check for OOM (``ZREMRANGEBYSCORE``), after which Redis let their ``XADD``s through:
every send was accepted over the limit. Now a send is refused with ``status=REFUSED``,
``error="redis out of memory"``, nothing of it written, while receives and acks still
work so that consumers can drain the queue.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from tta_agent_coordination import RedisMessageCoordinator
from tta_agent_coordination.errors import CoordinatorUnavailableError
from tta_agent_coordination.models import AgentId, SendStatus
from tta_agent_coordination.redis.codec import envelope_json
from tta_agent_coordination.redis.sending import OUT_OF_MEMORY
from tta_agent_coordination.resilience import PassthroughGuard
from tta_agent_coordination.store import PendingMessage
from tta_agent_coordination.testing import unique_prefix
from tta_agent_coordination.testing.server import (
    RedisServerNotFoundError,
    free_port,
    start_redis_server,
    stop_redis_server,
    wait_until_up,
)

from .conftest import RECIPIENT, SENDER, make_message

pytestmark = pytest.mark.real_redis

OTHER = AgentId("world_builder", "w2")
JUNK_CHUNK = "j" * 512_000


@pytest.fixture
async def full_redis() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """A throwaway server with ``noeviction`` (and room, until :func:`fill`)."""
    port = free_port()
    try:
        proc = start_redis_server(port, maxmemory="100mb", maxmemory_policy="noeviction")
    except RedisServerNotFoundError as exc:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{exc}; CI must run the maxmemory tests")
        pytest.skip(str(exc))
    client = aioredis.Redis(host="127.0.0.1", port=port)
    try:
        await wait_until_up(port)
        yield client, unique_prefix("oom")
    finally:
        await client.aclose()
        stop_redis_server(proc)


async def fill(client: aioredis.Redis, prefix: str) -> None:
    """Put Redis over its limit: the limit goes 256 KB below what it uses.

    (Filling up to the limit leaves the server at its edge, where a freed query buffer
    brings it back under for the next command.)
    """
    await client.set(f"{prefix}:junk", JUNK_CHUNK)
    used = int((await client.info("memory"))["used_memory"])
    await client.config_set("maxmemory", used - 256 * 1024)
    with pytest.raises(OutOfMemoryError):
        await client.set(f"{prefix}:junk:probe", "x")


async def make_room(client: aioredis.Redis) -> None:
    await client.config_set("maxmemory", 100 * 1024 * 1024)


async def queue_keys(client: aioredis.Redis, prefix: str, agent: AgentId) -> list[bytes]:
    return [k async for k in client.scan_iter(match=f"{prefix}:*{agent}*")]


async def test_sends_to_a_full_redis_are_refused_and_nothing_is_written(full_redis):
    client, prefix = full_redis
    coord = RedisMessageCoordinator(client, key_prefix=prefix, guard=PassthroughGuard())
    # OTHER's streams exist (the first write would be XADD), RECIPIENT's do not (XGROUP).
    assert (await coord.send_message(SENDER, OTHER, make_message(0, recipient=OTHER))).delivered
    await fill(client, prefix)

    one = await coord.send_message(SENDER, RECIPIENT, make_message(1))
    assert (one.delivered, one.status, one.error) == (False, SendStatus.REFUSED, OUT_OF_MEMORY)
    # One script call per queue, in one pipeline: each refused, none hidden.
    many = await coord.send_many(
        [make_message(2), make_message(3, recipient=OTHER), make_message(4)]
    )
    assert [(r.delivered, r.status, r.error) for r in many] == [
        (False, SendStatus.REFUSED, OUT_OF_MEMORY)
    ] * 3
    # Refused means nothing half-moved: no stream, no dedupe entry.
    assert await queue_keys(client, prefix, RECIPIENT) == []
    assert (await coord.queue_stats(OTHER)).unsettled == 1


async def test_receive_and_ack_drain_a_full_redis_then_sends_are_accepted(full_redis):
    client, prefix = full_redis
    coord = RedisMessageCoordinator(client, key_prefix=prefix, guard=PassthroughGuard())
    sent = [make_message(i) for i in range(20)]
    assert all(r.delivered for r in await coord.send_many(sent))
    await fill(client, prefix)
    assert not (await coord.send_message(SENDER, RECIPIENT, make_message(99))).delivered

    batch = await coord.receive_batch(RECIPIENT, 10)
    assert len(batch) == 10
    assert await coord.ack_many(RECIPIENT, [r.token for r in batch]) == [True] * 10
    first = await coord.receive(RECIPIENT)
    assert first is not None
    assert await coord.ack(RECIPIENT, first.token)
    assert (await coord.queue_stats(RECIPIENT)).unsettled == 9

    await make_room(client)
    again = await coord.send_message(SENDER, RECIPIENT, make_message(99))
    assert (again.delivered, again.status) == (True, SendStatus.ENQUEUED)


async def test_restore_into_a_full_redis_raises_and_restores_nothing(full_redis):
    client, prefix = full_redis
    coord = RedisMessageCoordinator(client, key_prefix=prefix, guard=PassthroughGuard())
    await fill(client, prefix)
    pending = [
        PendingMessage(
            message_id=m.message_id, recipient=RECIPIENT, envelope=envelope_json(m), incarnation=1
        )
        for m in (make_message(i) for i in range(3))
    ]
    with pytest.raises(CoordinatorUnavailableError, match="maxmemory") as info:
        await coord.restore_messages(pending)
    assert isinstance(info.value.__cause__, OutOfMemoryError)
    assert await queue_keys(client, prefix, RECIPIENT) == []
