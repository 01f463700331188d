"""Subscriptions of agents to message types, stored in Redis.

Each subscription is one entry in the ``{_subs}:index`` hash and one member
(``"<type:instance>#<subscription_id>"``) of the set of each message type it covers, so
that removing one subscription never removes another of the same agent. All of it lives
in one hash slot and changes in MULTI/EXEC transactions.
"""

from __future__ import annotations

import json
import uuid

import redis.asyncio as aioredis

from tta_agent_coordination.models import AgentId, MessageSubscription, MessageType
from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.keys import KeySpace

__all__ = ["SubscriptionStore", "new_subscription"]


def new_subscription(agent_id: AgentId, message_types: list[MessageType]) -> MessageSubscription:
    """A subscription with a fresh id (not yet stored)."""
    return MessageSubscription(
        subscription_id=uuid.uuid4().hex,
        agent_id=agent_id,
        message_types=list(dict.fromkeys(MessageType(t) for t in message_types)),
    )


def _member(agent_id: AgentId, subscription_id: str) -> str:
    return f"{agent_id}#{subscription_id}"


class SubscriptionStore:
    """Reads and writes subscriptions under one key space."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._keys = keys

    async def save(self, subscription: MessageSubscription) -> None:
        """Store ``subscription`` (idempotent)."""
        member = _member(subscription.agent_id, subscription.subscription_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._keys.subscriptions,
                subscription.subscription_id,
                subscription.model_dump_json(),
            )
            for message_type in subscription.message_types:
                pipe.sadd(self._keys.subscribers(message_type), member)
            await pipe.execute()

    async def remove(self, subscription_id: str) -> bool:
        """Remove a subscription; False when it does not exist."""
        raw = await self._redis.hget(self._keys.subscriptions, subscription_id)
        if raw is None:
            return False
        subscription = MessageSubscription.model_validate(json.loads(raw))
        member = _member(subscription.agent_id, subscription_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            for message_type in subscription.message_types:
                pipe.srem(self._keys.subscribers(message_type), member)
            pipe.hdel(self._keys.subscriptions, subscription_id)
            results = await pipe.execute()
        return bool(results[-1])

    async def subscribers(self, message_type: MessageType) -> list[AgentId]:
        """The distinct agents subscribed to ``message_type``, sorted by address."""
        members = await self._redis.smembers(self._keys.subscribers(message_type))
        agents = {AgentId.parse(text(m).partition("#")[0]) for m in members}
        return sorted(agents, key=str)

    async def list(self) -> list[MessageSubscription]:
        """Every stored subscription."""
        raw = await self._redis.hvals(self._keys.subscriptions)
        return [MessageSubscription.model_validate(json.loads(v)) for v in raw]
