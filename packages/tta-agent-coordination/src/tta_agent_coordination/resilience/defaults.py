"""The default guard: one ``RedisGuard`` (one breaker, one retry policy) per Redis client.

A coordinator and a registry built on the same client share its breaker, so that both
stop calling a Redis that is down, and both resume together. The breaker PINGs that
client's Redis as its health check (:func:`~tta_agent_coordination.resilience.redis_health_check`).
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.resilience.guard import RedisGuard

__all__ = ["default_redis_guard"]

_GUARDS: WeakKeyDictionary[RedisClient, RedisGuard] = WeakKeyDictionary()


def default_redis_guard(client: RedisClient) -> RedisGuard:
    """The guard shared by every component that uses ``client`` without its own."""
    guard = _GUARDS.get(client)
    if guard is None:
        guard = _GUARDS[client] = RedisGuard(client=client)
    return guard
