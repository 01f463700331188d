"""Recovery: expired leases back to their queues, due retries promoted, store restores.

Receives heal their own queue; :meth:`Recovery.recover` is for queues nobody receives
from (``recover_pending``); :meth:`Recovery.release` for the leases of a consumer known
to be dead (``release_leases``: its own queue's, and those it held in its type queue);
:meth:`Recovery.restore` re-enqueues messages from a message store after Redis lost
them (see ``docs/durability.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.codec import priority_index
from tta_agent_coordination.redis.core import CoordinatorCore
from tta_agent_coordination.redis.dedupe_sweeper import sweep_orphan_dedupe_sets
from tta_agent_coordination.redis.queue_index import QueueIndex
from tta_agent_coordination.redis.scripts import queue_recover, queue_restore
from tta_agent_coordination.redis.scripts.queue_restore import RestoreItem
from tta_agent_coordination.store import PendingMessage

__all__ = ["RESTORE_CHUNK", "Recovery"]

RESTORE_CHUNK = 500
"""Messages per restore script call (bounds how long one call blocks Redis)."""


class Recovery:
    """Recovers and restores queues for the coordinator."""

    def __init__(self, core: CoordinatorCore, index: QueueIndex) -> None:
        self._core = core
        self._index = index

    async def known_queues(self) -> list[AgentId]:
        """Every queue in the queue index, sorted."""
        return await self._index.members()

    async def recover_all(self) -> int:
        """Recover every queue in the queue index; how many messages were moved."""
        total = 0
        for queue in await self._index.members():
            total += await self.recover(queue, force=False)
        await sweep_orphan_dedupe_sets(self._core, self._index)
        return total

    async def release(self, agent_id: AgentId) -> int:
        """Release every lease of a consumer known to be dead; how many messages moved.

        Every lease of ``agent_id``'s queue; for an instance, also every lease it holds in
        its type queue (the receive script recorded it as their lessee), each queue in one
        script call per batch, so another instance gets that work at once instead of after
        the visibility timeout. The type queue is recovered on the way (expired leases,
        due retries), as ``recover`` does. Each release counts as a delivery.
        """
        total = await self.recover(agent_id, force=True)
        if not agent_id.is_type_wide:
            total += await self.recover(agent_id.type_queue, force=False, lessee=str(agent_id))
        return total

    async def recover(self, agent_id: AgentId, *, force: bool, lessee: str = "") -> int:
        """Recover one queue (``force``: release every lease); how many messages moved.

        ``lessee`` (an instance): also release every lease it holds in this queue. A
        queue found entirely empty has its keys deleted and leaves the queue index.
        """
        core = self._core
        cfg = core.config
        call = queue_recover.call(
            core.keys.queue(agent_id),
            retry_attempts=cfg.retry_attempts,
            dlq_max_len=cfg.dlq_max_len,
            dedupe_window_ms=int(cfg.dedupe_window_s * 1000),
            orphan_idle_ms=0 if force else int(cfg.orphan_lease_s * 1000),
            limit=cfg.maintenance_batch,
            force=force,
            lessee=lessee,
        )
        total = 0
        dead_total = 0
        while True:
            outcome = await core.run("recover", call, retry=True)
            if outcome.moved:
                await core.lifecycle.moved(agent_id, outcome.moved)
            total += outcome.requeued + outcome.dead_lettered + outcome.promoted
            dead_total += outcome.dead_lettered
            if not outcome.more:
                break
        if outcome.removed:
            await self._index.remove(agent_id)
        if total:
            queue = str(agent_id)
            core.metrics.inc_recovered(queue, total - dead_total)
            if dead_total:
                core.metrics.inc_permanent(queue, dead_total)
            core.log.info(
                "recovered",
                queue=queue,
                moved=total,
                dead_lettered=dead_total,
                forced=force,
                lessee=lessee or None,
            )
        return total

    async def restore(self, messages: Sequence[PendingMessage]) -> list[bool]:
        """Enqueue messages again from a store; see ``RedisMessageCoordinator.restore_messages``."""
        core = self._core
        flags = [False] * len(messages)
        by_queue: dict[AgentId, list[int]] = {}
        for i, m in enumerate(messages):
            by_queue.setdefault(m.recipient, []).append(i)
        for agent_id, idx in by_queue.items():
            keys = core.keys.queue(agent_id)
            for start in range(0, len(idx), RESTORE_CHUNK):
                chunk = idx[start : start + RESTORE_CHUNK]
                call = queue_restore.call(
                    keys,
                    [
                        RestoreItem(
                            priority_index(m.priority),
                            m.message_id,
                            m.envelope,
                            m.attempts,
                            m.last_error or "",
                            m.expires_at_ms,
                            m.incarnation,
                            m.available_at_ms,
                            m.failure.value if m.failure is not None else "",
                        )
                        for m in (messages[i] for i in chunk)
                    ],
                    dlq_max_len=core.config.dlq_max_len,
                    dedupe_window_ms=int(core.config.dedupe_window_s * 1000),
                )
                restored = await core.run("restore", call)
                for i, flag in zip(chunk, restored, strict=True):
                    flags[i] = flag
            await self._index.add(agent_id, "restore")
        return flags
