"""Subscriptions of agents to message types, stored in Redis.

Each subscription is one entry in the ``{_subs}:index`` hash and one member
(``"<type:instance>#<subscription_id>"``) of the set of each message type it covers, so
that removing one subscription never removes another of the same agent. All of it lives
in one hash slot and changes in MULTI/EXEC transactions. :class:`SubscriptionStore`
reads and writes them; :class:`Subscriptions` is the coordinator's side, which also
writes TTA's synchronous ``subscribe_to_messages`` in the background.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import CoordinatorUnavailableError
from tta_agent_coordination.models import AgentId, MessageSubscription, MessageType
from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.core import UNAVAILABLE_ERRORS, CoordinatorCore
from tta_agent_coordination.redis.keys import KeySpace

__all__ = ["SubscriptionStore", "Subscriptions", "new_subscription"]


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

    def __init__(self, redis: RedisClient, keys: KeySpace) -> None:
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


class Subscriptions:
    """The coordinator's subscriptions: stored now, or in the background and retried."""

    def __init__(self, core: CoordinatorCore) -> None:
        self._core = core
        self._store = SubscriptionStore(core.redis, core.keys)
        self._unsaved: dict[str, MessageSubscription] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe_nowait(
        self, agent_id: AgentId, message_types: list[MessageType]
    ) -> MessageSubscription:
        """Subscribe now, store in the background; see ``subscribe_to_messages``."""
        subscription = new_subscription(agent_id, message_types)
        self._unsaved[subscription.subscription_id] = subscription
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return subscription
        task = loop.create_task(self.save_pending())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return subscription

    async def subscribe(
        self, agent_id: AgentId, message_types: list[MessageType]
    ) -> MessageSubscription:
        """Subscribe ``agent_id`` to ``message_types``; stored in Redis when this returns."""
        subscription = new_subscription(agent_id, message_types)
        await self._core.guard.run("subscribe", lambda: self._store.save(subscription), retry=True)
        return subscription

    async def unsubscribe(self, subscription_id: str) -> bool:
        """Remove a subscription; False when it does not exist."""
        self._unsaved.pop(subscription_id, None)
        return await self._core.call("unsubscribe", lambda: self._store.remove(subscription_id))

    async def subscribers(self, message_type: MessageType) -> list[AgentId]:
        """The agents subscribed to ``message_type``, once pending subscriptions are stored.

        Raises:
            CoordinatorUnavailableError: a pending subscription could not be stored.
        """
        message_type = MessageType(message_type)
        await self.save_pending(raise_errors=True)
        return await self._core.call(
            "subscribers", lambda: self._store.subscribers(message_type), retry=True
        )

    async def save_pending(self, *, raise_errors: bool = False) -> None:
        """Store the subscriptions made with :meth:`subscribe_nowait` not stored yet.

        Stops at the first failure: it is logged, or raised with ``raise_errors``.

        Raises:
            CoordinatorUnavailableError: with ``raise_errors``, a write failed.
        """
        for sid, subscription in list(self._unsaved.items()):
            try:
                await self._core.guard.run(
                    "subscribe", lambda s=subscription: self._store.save(s), retry=True
                )
            except UNAVAILABLE_ERRORS as exc:
                if raise_errors:
                    raise CoordinatorUnavailableError(
                        f"could not store subscription {sid}: {exc}"
                    ) from exc
                self._core.log.warning(
                    "subscription_not_saved", subscription_id=sid, error=str(exc)
                )
                return
            self._unsaved.pop(sid, None)

    async def aclose(self) -> None:
        """Wait for the background writes (their failures are logged, not raised)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
