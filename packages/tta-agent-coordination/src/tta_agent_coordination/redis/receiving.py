"""Receiving: reserve messages with the ``queue_receive`` script, wait for them, decode them.

A receive heals its queue first (expired leases back, due retries promoted, expired
messages dead-lettered), then reserves. With ``block``, an empty queue is waited on with
the coordinator's shared ``StreamWaiter`` (one ``XREAD BLOCK`` for every waiting receive)
for entries newer than the ones the script saw, never by polling.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId, FailureType, ReceivedMessage
from tta_agent_coordination.redis.codec import DecodeError, decode_delivery, text
from tta_agent_coordination.redis.core import CoordinatorCore
from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.scripts import queue_receive
from tta_agent_coordination.redis.settling import Settler

__all__ = ["MAX_BATCH", "Receiver"]

MAX_BATCH = 1_000
"""Most messages one ``receive_batch`` reserves."""

# Longest wait of a blocking receive before it runs the receive script again (healing
# its queue); it loops until its deadline. The shared StreamWaiter slices its own reads.
_MAX_BLOCK_SLICE_S = 30.0


class Receiver:
    """Reserves messages for the coordinator (``receive``, ``receive_batch``)."""

    def __init__(self, core: CoordinatorCore, settler: Settler) -> None:
        self._core = core
        self._settler = settler

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
            if outcome.deliveries:
                return await self._decode(agent_id, outcome.deliveries)
            if deadline is None:
                return []
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            wait = min(remaining, _MAX_BLOCK_SLICE_S)
            if outcome.wake_at_ms >= 0:
                wait = min(wait, max(0.001, (outcome.wake_at_ms - outcome.server_now_ms) / 1000))
            await self._wait_for_entries(keys, [text(i) for i in outcome.last_ids], wait)

    async def _wait_for_entries(self, keys: QueueKeys, last_ids: list[str], seconds: float) -> None:
        """Block until an entry newer than ``last_ids`` arrives, or ``seconds`` pass.

        Waits through the coordinator's shared :class:`StreamWaiter` (one blocked XREAD
        for every waiting receive, not one connection each). It changes nothing; it only
        wakes the caller, which then reserves through the receive script (another
        consumer may win the race; it loops).
        """
        streams = dict(zip(keys.ready, last_ids, strict=True))
        await self._core.waiter.wait(streams, seconds)

    async def _decode(self, agent_id: AgentId, deliveries: list[Any]) -> list[ReceivedMessage]:
        """Decode the reserved deliveries; an undecodable one is dead-lettered at once."""
        received: list[ReceivedMessage] = []
        leased = deliveries
        for item in deliveries:
            try:
                received.append(decode_delivery(item))
            except DecodeError as exc:
                # Not ours to interpret: keep it, but out of the way, with the reason.
                self._core.log.error(
                    "undecodable_message", queue=str(agent_id), token=exc.token, error=str(exc)
                )
                await self._settler.nack(agent_id, exc.token, FailureType.PERMANENT, str(exc))
                leased = [d for d in leased if d is not item]
        await self._core.lifecycle.leased(agent_id, received, leased)
        self._core.metrics.inc_received(str(agent_id), len(received))
        return received
