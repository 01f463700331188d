"""Quick start: three agents coordinate through per-agent queues.

- ``input_processor`` sends five requests to ``world_builder``;
- ``world_builder`` handles them: one fails once and is retried, one is poison and is
  dead-lettered; for each success it publishes an event;
- ``narrative_generator`` is subscribed to events and receives them.

Runs on an embedded FakeRedis, or on the Redis named by ``TTA_COORD_REDIS_URL``. Exits 0
only if every message ended where it should: four acked, one dead letter, four events.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import redis.asyncio as aioredis

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    FailureType,
    MessagePriority,
    MessageType,
    RedisMessageCoordinator,
)

INPUT = AgentId("input_processor")
WORLD = AgentId("world_builder")
NARRATIVE = AgentId("narrative_generator")


def log(agent: AgentId, text: str) -> None:
    """Print one line of the run, tagged with the agent."""
    print(f"  [{agent.type:<19}] {text}", flush=True)


async def world_builder(coord: RedisMessageCoordinator, expected: int) -> tuple[int, int]:
    """Handle requests until every one is settled; returns (acked, dead-lettered)."""
    acked = dead = 0
    seen_flaky = False
    while acked + dead < expected:
        item = await coord.receive(WORLD, visibility_timeout=10, block=5)
        if item is None:
            raise RuntimeError("world_builder waited 5 s for work that never came")
        request = item.message
        command = request.payload["command"]
        if command == "summon a dragon":  # poison: can never succeed
            await coord.nack(WORLD, item.token, FailureType.PERMANENT, "dragons are not allowed")
            log(WORLD, f"{command!r}: permanent failure -> dead letter")
            dead += 1
            continue
        if command == "open the gate" and not seen_flaky:  # a transient failure, once
            seen_flaky = True
            await coord.nack(WORLD, item.token, FailureType.TRANSIENT, "gate is stuck")
            log(WORLD, f"{command!r}: transient failure (attempt {item.attempts}) -> retry")
            continue
        log(WORLD, f"{command!r}: built (attempt {item.attempts})")
        event = AgentMessage(
            sender=WORLD,
            recipient=WORLD,
            message_type=MessageType.EVENT,
            payload={"world_changed": command},
            correlation_id=request.message_id,
        )
        await coord.publish_event(WORLD, event)
        await coord.ack(WORLD, item.token)
        acked += 1
    return acked, dead


async def narrative_generator(coord: RedisMessageCoordinator, expected: int) -> int:
    """Narrate every world change; returns how many events arrived."""
    narrated = 0
    while narrated < expected:
        item = await coord.receive(NARRATIVE, block=5)
        if item is None:
            raise RuntimeError("narrative_generator waited 5 s for an event that never came")
        log(NARRATIVE, f"narrates: {item.message.payload['world_changed']}")
        await coord.ack(NARRATIVE, item.token)
        narrated += 1
    return narrated


async def main() -> int:
    """Run the three agents; 0 when every message ended where it should."""
    url = os.environ.get("TTA_COORD_REDIS_URL")
    if url:
        client: aioredis.Redis = aioredis.Redis.from_url(url)
        where = url
    else:
        from tta_agent_coordination.testing import fake_redis

        client = fake_redis()
        where = "embedded FakeRedis"
    prefix = f"quickstart-{uuid.uuid4().hex[:8]}"
    coord = RedisMessageCoordinator(client, key_prefix=prefix, backoff_base=0.2, backoff_max=1)
    print(f"tta-agent-coordination quick start on {where} (prefix {prefix})")
    try:
        await coord.subscribe(NARRATIVE, [MessageType.EVENT])
        commands = ["look around", "open the gate", "summon a dragon", "light a fire", "go north"]
        for command in commands:
            priority = MessagePriority.HIGH if command == "look around" else MessagePriority.NORMAL
            request = AgentMessage(
                sender=INPUT,
                recipient=WORLD,
                message_type=MessageType.REQUEST,
                payload={"command": command},
                priority=priority,
            )
            result = await coord.send_message(INPUT, WORLD, request)
            log(INPUT, f"sent {command!r} -> delivered={result.delivered}")
        (acked, dead), narrated = await asyncio.gather(
            world_builder(coord, len(commands)), narrative_generator(coord, len(commands) - 1)
        )
        letters = await coord.dead_letters(WORLD)
        print(f"\nacked {acked}, dead-lettered {dead}, events narrated {narrated}")
        for letter in letters:
            reason = f"{letter.failure_type}: {letter.last_error}"
            print(f"dead letter: {letter.message.payload} ({reason})")
        stats = await coord.queue_stats(WORLD)
        ok = (acked, dead, narrated, len(letters), stats.unsettled) == (4, 1, 4, 1, 0)
        print("OK: every message ended where it should" if ok else "FAILED: unexpected outcome")
        return 0 if ok else 1
    finally:
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
