"""Receiving: reserve messages with the ``queue_receive`` script, wait for them, decode them.

A receive heals its queue first (expired leases back, due retries promoted, expired
messages dead-lettered), then reserves. With ``block``, an empty queue is waited on with
the coordinator's shared ``StreamWaiter`` (one ``XREAD BLOCK`` for every waiting receive)
for entries newer than the ones the script saw, never by polling.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tta_agent_coordination.errors import ConfigurationError, CoordinationError
from tta_agent_coordination.models import AgentId, ReceivedMessage
from tta_agent_coordination.observability.metrics import TimingMetrics, timing_of
from tta_agent_coordination.redis.codec import DecodeError, decode_delivery, text
from tta_agent_coordination.redis.core import CoordinatorCore
from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.scripts import queue_dlq_reject, queue_receive

__all__ = ["MAX_BATCH", "Receiver"]

MAX_BATCH = 1_000
"""Most messages one ``receive_batch`` reserves."""

# Longest wait of a blocking receive before it runs the receive script again (healing
# its queue); it loops until its deadline. The shared StreamWaiter slices its own reads.
_MAX_BLOCK_SLICE_S = 30.0


class Receiver:
    """Reserves messages for the coordinator (``receive``, ``receive_batch``)."""

    def __init__(self, core: CoordinatorCore) -> None:
        self._core = core
        self._timing = timing_of(core.metrics)

    async def receive_batch(
        self,
        agent_id: AgentId,
        count: int,
        *,
        visibility_timeout: float,
        block: float | None,
    ) -> list[ReceivedMessage]:
        """Reserve up to ``count`` messages; see ``RedisMessageCoordinator.receive_batch``.

        Raises:
            ConfigurationError: an argument is out of range.
        """
        if not 1 <= count <= MAX_BATCH:
            raise ConfigurationError(f"count must be between 1 and {MAX_BATCH}, got {count}")
        if visibility_timeout <= 0:
            raise ConfigurationError(
                f"visibility_timeout must be > 0 seconds, got {visibility_timeout}"
            )
        if block is not None and block < 0:
            raise ConfigurationError(f"block must be >= 0 seconds or None, got {block}")
        core = self._core
        keys = core.keys.queue(agent_id)
        cfg = core.config
        call = queue_receive.call(
            keys,
            count=count,
            visibility_ms=max(1, int(visibility_timeout * 1000)),
            retry_attempts=cfg.retry_attempts,
            dlq_max_len=cfg.dlq_max_len,
            dedupe_window_ms=int(cfg.dedupe_window_s * 1000),
            maintenance_batch=cfg.maintenance_batch,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block if block else None
        queue = str(agent_id)
        while True:
            outcome = await core.run("receive", call)
            if outcome.moved:
                await core.lifecycle.moved(agent_id, outcome.moved)
            if outcome.recovered:
                core.metrics.inc_recovered(queue, outcome.recovered)
            if outcome.expired:
                core.inc_expired(queue, outcome.expired)
            if outcome.malformed:
                # Not ours to interpret: kept in the DLQ with its raw fields and the reason.
                core.log.error(
                    "malformed_entries_dead_lettered", queue=queue, count=outcome.malformed
                )
                core.metrics.inc_permanent(queue, outcome.malformed)
            if outcome.deliveries:
                if self._timing is not None:
                    _observe_waits(self._timing, queue, outcome)
                return await self._decode(agent_id, outcome.deliveries)
            if deadline is None:
                return []
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            wait = min(remaining, _MAX_BLOCK_SLICE_S)
            if outcome.wake_at_ms >= 0:
                wait = min(wait, max(0.001, (outcome.wake_at_ms - outcome.server_now_ms) / 1000))
            woken = await self._wait_for_entries(keys, [text(i) for i in outcome.last_ids], wait)
            if not woken and wait >= remaining:
                # The whole block passed with no new entry and no retry falling due: the
                # queue is as the script left it, so return without running it again (an
                # idle worker then costs one script per poll, not two).
                return []

    async def _wait_for_entries(
        self, keys: QueueKeys, last_ids: list[str], seconds: float
    ) -> set[str]:
        """Block until an entry newer than ``last_ids`` arrives, or ``seconds`` pass.

        Returns the streams that got a new entry (empty when the time ran out).

        Waits through the coordinator's shared :class:`StreamWaiter` (one blocked XREAD
        for every waiting receive, not one connection each). It changes nothing; it only
        wakes the caller, which then reserves through the receive script (another
        consumer may win the race; it loops).
        """
        streams = dict(zip(keys.ready, last_ids, strict=True))
        return await self._core.waiter.wait(streams, seconds)

    async def _decode(self, agent_id: AgentId, deliveries: list[Any]) -> list[ReceivedMessage]:
        """Decode the reserved deliveries; undecodable ones are dead-lettered at once.

        They go to the DLQ as ``malformed`` with their raw fields (one script call for
        the batch); the rest of the batch is delivered.
        """
        received: list[ReceivedMessage] = []
        leased = deliveries
        rejected: list[tuple[str, str]] = []
        for item in deliveries:
            try:
                received.append(decode_delivery(item))
            except DecodeError as exc:
                self._core.log.error(
                    "undecodable_message", queue=str(agent_id), token=exc.token, error=str(exc)
                )
                rejected.append((exc.token, str(exc)))
                leased = [d for d in leased if d is not item]
        if rejected:
            await self._reject(agent_id, rejected)
        await self._core.lifecycle.leased(agent_id, received, leased)
        self._core.metrics.inc_received(str(agent_id), len(received))
        return received

    async def _reject(self, agent_id: AgentId, rejected: list[tuple[str, str]]) -> None:
        """Dead-letter undecodable deliveries as ``malformed``.

        A failure is logged, not raised: the decodable rest of the batch is delivered all
        the same, and the rejected ones come back when their lease expires.
        """
        core = self._core
        cfg = core.config
        call = queue_dlq_reject.call(
            core.keys.queue(agent_id),
            rejected,
            dlq_max_len=cfg.dlq_max_len,
            dedupe_window_ms=int(cfg.dedupe_window_s * 1000),
        )
        try:
            outcome = await core.run("receive", call)
        except CoordinationError as exc:
            core.log.warning("undecodable_not_dead_lettered", queue=str(agent_id), error=str(exc))
            return
        if outcome.moved:
            await core.lifecycle.moved(agent_id, outcome.moved)
        if outcome.dead_lettered:
            core.metrics.inc_permanent(str(agent_id), outcome.dead_lettered)


def _observe_waits(
    timing: TimingMetrics, queue: str, outcome: queue_receive.ReceiveOutcome
) -> None:
    """Report the queue wait of each first delivery: lease time minus send time.

    Both are on the Redis server clock (the script's ``TIME`` and the entry's ``t``), so
    clients with skewed clocks agree. Redeliveries are left out: their ``t`` is the first
    send, so their wait would include the earlier attempts.
    """
    now_ms = outcome.server_now_ms
    for item in outcome.deliveries:
        try:
            if int(item[2]) == 1:
                timing.observe_queue_wait(queue, max(0, now_ms - int(item[4])) / 1000)
        except (ValueError, TypeError, IndexError):
            continue  # malformed: dead-lettered by _decode, no wait to report
