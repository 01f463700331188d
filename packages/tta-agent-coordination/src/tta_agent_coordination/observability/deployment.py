"""Reading what the metrics refresher measures from Redis: queues and shared breakers.

Cheap by construction: one ``queue_stats`` script per queue (counts, and the entry time
of the oldest ready message of each priority), sent in pipelines of ``batch_size``; one
``SCAN`` over the breakers' key pattern and one pipelined ``HGET`` per breaker. Nothing
here reads a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.observability.queue_gauges import QueueSnapshot
from tta_agent_coordination.redis.breaker_pages import find_breakers
from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.lua import ScriptSet
from tta_agent_coordination.redis.scripts import queue_stats
from tta_agent_coordination.resilience.breaker_state import CircuitState

if TYPE_CHECKING:
    from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

__all__ = ["DEFAULT_BATCH_SIZE", "DeploymentReader"]

DEFAULT_BATCH_SIZE = 200
"""Queues measured per pipelined round trip."""

_STATES = {state.value: state for state in CircuitState}


class DeploymentReader:
    """Measures queues and shared circuit breakers under one key prefix.

    Args:
        client: the Redis client (the coordinator's).
        coordinator: the coordinator of the prefix; its queue index names the queues.
        batch_size: queues measured per pipelined round trip.

    Raises:
        ConfigurationError: ``batch_size`` is below 1.
    """

    def __init__(
        self,
        client: RedisClient,
        coordinator: RedisMessageCoordinator,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
        self._client = client
        self._coordinator = coordinator
        self._keys = coordinator.keys
        self._scripts = ScriptSet(client)
        self._batch = batch_size

    async def known_queues(self) -> list[AgentId]:
        """Every queue in the prefix's queue index."""
        return await self._coordinator.known_queues()

    async def queue_snapshots(self, queues: Sequence[AgentId]) -> dict[str, QueueSnapshot]:
        """A snapshot of each queue, by ``str(agent_id)``.

        Raises:
            redis.exceptions.RedisError: Redis failed (nothing is returned).
            CoordinatorUnavailableError: Redis would not load the script.
        """
        snapshots: dict[str, QueueSnapshot] = {}
        for start in range(0, len(queues), self._batch):
            chunk = queues[start : start + self._batch]
            calls = [queue_stats.call(self._keys.queue(q)) for q in chunk]
            outcomes, _ = await self._scripts.run_pipelined(calls)
            for agent_id, counts in zip(chunk, outcomes, strict=True):
                if isinstance(counts, BaseException):  # pragma: no cover - keep=() raises
                    raise counts
                snapshots[str(agent_id)] = QueueSnapshot.measured(
                    (counts.ready_high, counts.ready_normal, counts.ready_low),
                    queue_stats.oldest_ready_ages(counts),
                    leased=counts.leased,
                    delayed=counts.delayed,
                    dead=counts.dead,
                )
        return snapshots

    async def breaker_states(self) -> dict[str, CircuitState]:
        """The state of every circuit breaker shared through Redis, by name.

        Breakers with in-process state are not in Redis and not here.

        Raises:
            redis.exceptions.RedisError: Redis failed.
        """
        keys = self._keys
        found = [
            (name, keys.breaker_state(name)) for name in await find_breakers(self._client, keys)
        ]
        if not found:
            return {}
        async with self._client.pipeline(transaction=False) as pipe:
            for _, key in found:
                pipe.hget(key, "s")
            replies: list[Any] = await pipe.execute()
        states: dict[str, CircuitState] = {}
        for (name, _), raw in zip(found, replies, strict=True):
            state = _STATES.get(text(raw)) if raw is not None else None
            if state is not None:  # None: expired between SCAN and HGET, or foreign
                states[name] = state
        return states
