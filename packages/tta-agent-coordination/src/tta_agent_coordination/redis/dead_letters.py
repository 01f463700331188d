"""Dead-letter administration and queue statistics (what ``tta-coord dlq``/``inspect`` show).

Dead letters are entries of a queue's bounded ``dlq`` stream; they can be listed,
replayed into the ready streams with fresh attempts, or purged.
"""

from __future__ import annotations

from collections.abc import Iterable

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId, DeadLetter, QueueStats, UndecodableDeadLetter
from tta_agent_coordination.redis.codec import decode_dead_letter
from tta_agent_coordination.redis.core import CoordinatorCore
from tta_agent_coordination.redis.scripts import queue_dlq_purge, queue_dlq_replay, queue_stats

__all__ = ["REPLAY_BATCH", "DeadLetterAdmin"]

REPLAY_BATCH = 500
"""Dead letters examined per replay script call."""


class DeadLetterAdmin:
    """Inspects queues and manages their dead letters for the coordinator."""

    def __init__(self, core: CoordinatorCore) -> None:
        self._core = core

    async def queue_stats(self, agent_id: AgentId) -> QueueStats:
        """Ready (per priority), leased, delayed and dead counts of one queue, atomically."""
        core = self._core
        counts = await core.run(
            "queue_stats", queue_stats.call(core.keys.queue(agent_id)), retry=True
        )
        stats = queue_stats.to_stats(agent_id, counts)
        core.metrics.set_queue_depth(str(agent_id), stats.unsettled)
        core.metrics.set_dead_letters(str(agent_id), stats.dead)
        return stats

    async def dead_letters(
        self, agent_id: AgentId, limit: int
    ) -> list[DeadLetter | UndecodableDeadLetter]:
        """The oldest ``limit`` dead letters of ``agent_id``'s queue, every one of them.

        A malformed or undecodable one is an ``UndecodableDeadLetter`` with its raw fields.

        Raises:
            ConfigurationError: ``limit`` is not positive.
        """
        if limit <= 0:
            raise ConfigurationError(f"limit must be > 0, got {limit}")
        core = self._core
        dlq = core.keys.queue(agent_id).dlq
        entries = await core.call(
            "dead_letters", lambda: core.redis.xrange(dlq, count=limit), retry=True
        )
        return [decode_dead_letter(entry_id, fields or {}) for entry_id, fields in entries or []]

    async def replay(self, agent_id: AgentId, message_ids: Iterable[str] | None) -> int:
        """Move dead letters back to the ready streams; see ``replay_dead_letters``.

        Malformed dead letters are kept (they cannot be delivered) and logged.
        """
        core = self._core
        keys = core.keys.queue(agent_id)
        selected = None if message_ids is None else list(dict.fromkeys(message_ids))
        if selected == []:
            return 0
        cursor = "-"
        replayed = refused = 0
        while True:
            call = queue_dlq_replay.call(
                keys, cursor=cursor, batch=REPLAY_BATCH, message_ids=selected
            )
            outcome = await core.run("replay_dead_letters", call)
            if outcome.message_ids:
                await core.lifecycle.replayed(agent_id, outcome.message_ids, outcome.server_now_ms)
            replayed += outcome.replayed
            refused += outcome.refused
            cursor = outcome.next_cursor
            if not cursor:
                break
        if replayed:
            core.log.info("dead_letters_replayed", queue=str(agent_id), count=replayed)
        if refused:
            core.log.warning(
                "malformed_dead_letters_kept",
                queue=str(agent_id),
                count=refused,
                hint="cannot be replayed; inspect with tta-coord dlq list, remove with dlq purge",
            )
        return replayed

    async def purge(self, agent_id: AgentId) -> int:
        """Delete every dead letter of ``agent_id``'s queue; how many there were."""
        core = self._core
        return await core.run("purge_dead_letters", queue_dlq_purge.call(core.keys.queue(agent_id)))
