"""A TTA-style turn on the original ``agent_orchestration`` names (``tta_agents.compat``).

This is how a TTA module looks after its first migration step: only the imports changed
(``from src.agent_orchestration... import`` became ``from tta_agents.compat import``) and
the registry calls are awaited. ``native_app.py`` is the same turn on the native API; the
diff between the two is in docs/TTA_MIGRATION_GUIDE.md.

Runs on an embedded FakeRedis, or the Redis at ``TTA_COORD_REDIS_URL``; prints the turn.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

import redis.asyncio as aioredis

from tta_agents.compat import (
    AgentId,
    AgentMessage,
    AgentType,
    CircuitBreaker,
    CircuitBreakerConfig,
    MessagePriority,
    MessageType,
    RedisAgentRegistry,
    RedisMessageCoordinator,
    create_agent_id,
)


class InputProcessor:
    """A stand-in for TTA's input processor agent (what the registry needs)."""

    def __init__(self, agent_id: AgentId) -> None:
        self.agent_id = agent_id
        self.name = f"ipa:{agent_id.instance}"
        self.turns = 0

    def status_snapshot(self) -> dict[str, Any]:
        """Sent with each heartbeat."""
        return {"turns": self.turns}

    async def export_state(self) -> dict[str, Any]:
        """Kept across registrations."""
        return {"turns": self.turns}

    async def import_state(self, state: dict[str, Any]) -> None:
        """Receives the state saved by the agent's previous registration."""
        self.turns = int(state.get("turns", 0))

    async def process(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Normalise the player's text and route it by its first word."""
        self.turns += 1
        text = str(payload["text"]).strip().lower()
        return {"normalized_text": text, "routing": {"intent": text.split()[0]}}


async def run_turn(redis: Any, player_text: str, key_prefix: str = "ao") -> dict[str, Any]:
    """Send the player's text to the input processor, consume it, and report."""
    coordinator = RedisMessageCoordinator(redis, key_prefix=key_prefix)
    registry = RedisAgentRegistry(redis, key_prefix=key_prefix, heartbeat_ttl_s=30.0)
    breaker = CircuitBreaker(
        redis, "ipa", CircuitBreakerConfig(failure_threshold=3), key_prefix=key_prefix
    )
    agent = InputProcessor(create_agent_id(AgentType.IPA, "ipa-1"))
    sender = create_agent_id(AgentType.NGA, "session-1")
    try:
        await registry.register(agent)
        message = AgentMessage(
            message_id=uuid.uuid4().hex,
            sender=sender,
            recipient=agent.agent_id,
            message_type=MessageType.REQUEST,
            payload={"text": player_text},
            priority=MessagePriority.HIGH,
        )
        result = await coordinator.send_message(sender, agent.agent_id, message)
        received = await coordinator.receive(agent.agent_id, visibility_timeout=5)
        assert received is not None
        output = await breaker.call(lambda: agent.process(received.message.payload))
        await coordinator.ack(agent.agent_id, received.token)
        delivered_ok = coordinator.metrics.snapshot()["delivery"]["delivered_ok"]
        await registry.deregister(agent.agent_id)
        return {
            "delivered": result.delivered,
            "output": output,
            "delivered_ok": delivered_ok,
            "breaker": breaker.state.value,
        }
    finally:
        await breaker.aclose()
        await registry.aclose()
        await coordinator.aclose()


async def main() -> None:
    """Play one turn and print it."""
    url = os.environ.get("TTA_COORD_REDIS_URL")
    if url:
        redis: Any = aioredis.Redis.from_url(url)
    else:
        from tta_agent_coordination.testing import fake_redis

        redis = fake_redis()
    try:
        print(json.dumps(await run_turn(redis, "Go north"), sort_keys=True))
    finally:
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
