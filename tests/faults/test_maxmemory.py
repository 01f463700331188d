"""Scenario 6: a Redis at ``maxmemory 5mb`` with ``noeviction``.

``docs/operations.md`` promises that a full server refuses sends. Required (issue 23
item 4): once Redis is over its limit, a send is refused with a clear, typed outcome
(``delivered=False`` with an out-of-memory error, or an exception saying so) and nothing
half-moved, while receives and acks keep working so that consumers can drain the queue;
once drained, sends are accepted again. Nothing reported delivered is lost.
"""

from __future__ import annotations

import time

import pytest

from tta_agent_coordination import AgentId, RedisMessageCoordinator
from tta_agent_coordination.resilience import PassthroughGuard
from tta_agent_coordination.settings import CoordinationSettings
from tta_agent_coordination.testing import unique_prefix

from .ledger import Handling, account
from .producer import Producer
from .servers import RedisServers

pytestmark = [pytest.mark.faults, pytest.mark.real_redis]

AGENT = AgentId("fmemory", "w1")
MAXMEMORY = 5 * 1024 * 1024
PAYLOAD = "x" * 2_000
MOST_SENDS = 5_000
"""Upper bound of the fill loop: ~10 MB of payloads, twice the limit."""
SLACK = 1.5
"""Redis may go a little over its limit (one script's writes); not 26 times (issue 23)."""


def is_out_of_memory(text: str) -> bool:
    return "memory" in text.lower() or "oom" in text.lower()


async def test_a_full_redis_refuses_sends_and_consumers_still_drain(
    redis_servers: RedisServers,
) -> None:
    server = await redis_servers.start(maxmemory=str(MAXMEMORY), policy="noeviction")
    prefix = unique_prefix("faults")
    settings = CoordinationSettings(redis_url=server.url, key_prefix=prefix)
    client = settings.redis_client()
    try:
        producer = Producer(
            settings.build_coordinator(client, queue_size=100_000),
            [AGENT],
            tag="mem",
            payload=lambda _i: {"pad": PAYLOAD},
        )
        # Fill until the first refusal (bounded: twice the limit's worth of payloads).
        while producer.next_index < MOST_SENDS and not producer.refused:
            await producer.send_batch(50)
        used = int((await server.info("memory"))["used_memory"])
        print(
            f"\nscenario 6: accepted {len(producer.delivered)} sends "
            f"({len(producer.delivered) * len(PAYLOAD) / 1e6:.1f} MB of payload), "
            f"used_memory={used / 1e6:.1f} MB, first refusal: "
            f"{next(iter(producer.refused.values()), None)}"
        )
        assert producer.refused, f"{len(producer.delivered)} sends accepted over maxmemory"
        assert used <= MAXMEMORY * SLACK, f"Redis grew to {used / 1e6:.1f} MB"
        assert all(is_out_of_memory(e) for e in producer.refused.values()), producer.refused
        # Refused means refused: a refused message is not in the queue, half or whole.
        consumer = RedisMessageCoordinator(client, key_prefix=prefix, guard=PassthroughGuard())
        stats = await consumer.queue_stats(AGENT)
        assert stats.unsettled == len(producer.delivered), stats

        # Receives and acks still work on the full server: a consumer drains the queue.
        handled: list[Handling] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = await consumer.receive_batch(AGENT, 200, visibility_timeout=60)
            if not batch:
                break
            handled += [
                Handling(r.message.message_id, r.attempts, "drain", 0, time.time()) for r in batch
            ]
            assert all(await consumer.ack_many(AGENT, [r.token for r in batch]))
        account(producer.delivered, handled, faulted=lambda _h: False).assert_ok()
        assert (await consumer.queue_stats(AGENT)).unsettled == 0

        # Drained: the server accepts sends again.
        producer.refused.clear()
        assert await producer.send_batch(10) == 10, producer.refused
    finally:
        await client.aclose()
