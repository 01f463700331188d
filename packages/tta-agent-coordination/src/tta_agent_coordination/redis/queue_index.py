"""The queue index: the set of every queue sent to under a prefix (``<prefix>:queues``).

``recover_pending(None)`` walks it to find every queue, whatever its agent type. A send
adds its queue in the same round trip as the enqueue, but only once per
:data:`INDEX_REFRESH_S` per queue, so the hot path rarely pays for it; recovery drops a
queue it found empty.
"""

from __future__ import annotations

from collections.abc import Iterable

from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.core import CoordinatorCore

__all__ = ["INDEX_REFRESH_S", "QueueIndex"]

INDEX_REFRESH_S = 30.0
"""How long a queue stays "known to be in the index" before a send adds it again."""


class QueueIndex:
    """Reads and maintains the queue index, remembering which queues are surely in it."""

    def __init__(self, core: CoordinatorCore) -> None:
        self._core = core
        self._indexed: dict[AgentId, float] = {}

    def is_stale(self, queue: AgentId, now: float) -> bool:
        """Whether ``queue`` was not added by this process in the last refresh period."""
        return now - self._indexed.get(queue, -INDEX_REFRESH_S) >= INDEX_REFRESH_S

    def stale(self, queues: Iterable[AgentId], now: float) -> set[AgentId]:
        """The queues among ``queues`` not added by this process in the last refresh period."""
        indexed = self._indexed
        return {q for q in queues if now - indexed.get(q, -INDEX_REFRESH_S) >= INDEX_REFRESH_S}

    def add_command(self, queues: Iterable[AgentId]) -> tuple[str, ...]:
        """The SADD that adds ``queues``, to send in a pipeline with the enqueues."""
        return ("SADD", self._core.keys.queue_index, *(str(q) for q in queues))

    def mark_added(self, queues: Iterable[AgentId], now: float) -> None:
        """Note that ``queues`` were added at ``now`` (monotonic seconds)."""
        self._indexed.update(dict.fromkeys(queues, now))

    async def members(self) -> list[AgentId]:
        """Every queue in the index, sorted (members that are not agent ids are skipped)."""
        core = self._core
        members = await core.call(
            "known_queues", lambda: core.redis.smembers(core.keys.queue_index), retry=True
        )
        queues: set[AgentId] = set()
        for member in members:
            try:
                queues.add(AgentId.parse(text(member)))
            except ValueError:
                continue
        return sorted(queues, key=str)

    async def add(self, agent_id: AgentId, operation: str) -> None:
        """Add one queue now (a restore), and forget that it was known to be there."""
        core = self._core
        await core.call(
            operation,
            lambda: core.redis.sadd(core.keys.queue_index, str(agent_id)),
            retry=True,
        )
        self._indexed.pop(agent_id, None)

    async def remove(self, agent_id: AgentId) -> None:
        """Drop an emptied queue from the index (its keys are already gone).

        A send racing with this is re-indexed by its sender within
        :data:`INDEX_REFRESH_S`; until then only ``recover_pending(None)`` misses it, and
        receives on the queue still heal it.
        """
        core = self._core
        self._indexed.pop(agent_id, None)
        await core.call(
            "recover",
            lambda: core.redis.srem(core.keys.queue_index, str(agent_id)),
            retry=True,
        )
