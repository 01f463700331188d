"""The original operator helpers: ``run_recovery`` and the queue-gauge poll.

The original scanned its ``reserved*`` keys for a hard-coded list of three agent types;
these use the core's queue index, so every agent type (OpenHands included) is covered.
Results stay keyed as the original keyed them (``"ipa:x"``, :func:`legacy_agent_key`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis

from tta_agent_coordination import AgentId
from tta_agents.compat.coordinator import DEFAULT_KEY_PREFIX, RedisMessageCoordinator
from tta_agents.compat.metrics import MessageMetrics
from tta_agents.types import legacy_agent_key

__all__ = ["poll_queue_metrics_once", "recover_all", "run_recovery"]


async def recover_all(coordinator: Any) -> dict[str, int]:
    """Recover expired leases of every known queue: ``{"ipa:x": moved}`` (non-zero only).

    ``coordinator`` is any core ``RedisMessageCoordinator`` (compat or native).
    """
    moved: dict[str, int] = {}
    queues: list[AgentId] = await coordinator.known_queues()
    for queue in queues:
        count: int = await coordinator.recover_pending(queue)
        if count:
            key = legacy_agent_key(queue)
            moved[key] = moved.get(key, 0) + count
    return moved


async def run_recovery(url: str, key_prefix: str = DEFAULT_KEY_PREFIX) -> dict[str, int]:
    """Connect to ``url`` and recover every queue under ``key_prefix`` (the original CLI).

    Returns ``{"ipa:x": moved}`` for each queue where something moved. An expired lease
    counts as a delivery attempt, so a message on its last attempt is dead-lettered.

    Raises:
        CoordinatorUnavailableError: Redis could not be reached.
    """
    client = aioredis.Redis.from_url(url)
    coordinator = RedisMessageCoordinator(client, key_prefix)
    try:
        return await recover_all(coordinator)
    finally:
        await coordinator.aclose()
        await client.aclose()


async def poll_queue_metrics_once(
    coordinator: Any, metrics: MessageMetrics, agents: Iterable[AgentId] | None = None
) -> None:
    """Set the original gauges from the queues' stats (the TTA component's poller).

    ``queue_lengths[("ipa:x", prio)]`` gets the ready count of each priority and
    ``dlq_lengths["ipa:x"]`` the dead-letter count, for ``agents`` (every known queue by
    default).
    """
    queues: Iterable[AgentId] = agents if agents is not None else await coordinator.known_queues()
    for queue in queues:
        stats = await coordinator.queue_stats(queue)
        key = legacy_agent_key(queue)
        for priority, count in stats.ready.items():
            metrics.set_queue_length(key, int(priority), count)
        metrics.set_dlq_length(key, stats.dead)
