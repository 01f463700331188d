"""The store marker: a deployment whose messages a store records says so in Redis.

A message store keeps its record consistent only if *every* coordinator that moves a
message records the move. A producer with the store and a worker without it leave the
store believing settled messages are still queued, and a restore after a Redis loss
then enqueues finished work again. So a coordinator with a store writes the marker
``<prefix>:{_store}:marker`` (``KeySpace.store_marker``) on its first send or receive,
and a coordinator *without* a store that finds the marker on its first send or first
delivered message logs ``store_not_attached`` (a warning, once per coordinator).

It warns rather than refuses: refusing would stop a running deployment over a
configuration mistake, and a storeless process on a recorded prefix is sometimes
meant (a one-off inspection, the migration that adds the store). ``tta-coord doctor``
reads the marker too and warns when the settings it runs with have no store. The
marker never expires; delete the key when a deployment stops using its store. See
``docs/durability.md``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import RedisError

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.keys import KeySpace

__all__ = ["StoreMarker", "read_store_marker"]

_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


async def read_store_marker(redis: RedisClient, keys: KeySpace) -> str | None:
    """What the marker says (the recording store's kind), or None when nobody marked.

    Raises:
        RedisError: Redis failed.
    """
    value = await redis.get(keys.store_marker)  # pyright: ignore[reportUnknownMemberType]
    return None if value is None else text(value)


class StoreMarker:
    """Marks the deployment (with a store) or checks the mark (without one), once.

    Args:
        redis: the coordinator's client.
        keys: its key space.
        store: the coordinator's store, or None.
        log: the coordinator's logger.
    """

    __slots__ = ("_keys", "_log", "_redis", "_store", "pending", "unrecorded")

    def __init__(self, redis: RedisClient, keys: KeySpace, store: Any, log: Any) -> None:
        self._redis = redis
        self._keys = keys
        self._store = store
        self._log = log
        self.pending = True
        """True until the mark was written or checked (the hook's one cheap test)."""
        self.unrecorded = False
        """True when this coordinator, without a store, works on a recorded deployment."""

    async def observe(self) -> None:
        """Write or check the mark; a Redis failure leaves it pending for the next call."""
        try:
            if self._store is not None:
                kind = type(self._store).__name__
                await self._redis.set(self._keys.store_marker, kind)  # pyright: ignore[reportUnknownMemberType]
            else:
                marked = await read_store_marker(self._redis, self._keys)
                if marked is not None:
                    self.unrecorded = True
                    self._log.warning(
                        "store_not_attached",
                        recorded_by=marked,
                        hint=(
                            "other coordinators under this prefix record every message to "
                            "a store, this one has none: what it settles stays unsettled in "
                            "the store and a restore after a Redis loss enqueues it again. "
                            "Give it the same store (store=..., or TTA_COORD_POSTGRES_DSN / "
                            "--store-dsn for tta-coord); see docs/durability.md"
                        ),
                    )
        except _ERRORS:
            return  # the operation itself reports the failure; try again next time
        self.pending = False
