"""Settling deliveries: ack (done), nack (retry later or dead-letter), extend a lease."""

from __future__ import annotations

import random
from collections.abc import Sequence

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId, FailureType
from tta_agent_coordination.redis.core import CoordinatorCore
from tta_agent_coordination.redis.scripts import queue_ack, queue_extend, queue_nack
from tta_agent_coordination.redis.scripts.queue_nack import DEAD_LETTERED, RETRY_SCHEDULED

__all__ = ["Settler"]


class Settler:
    """Settles deliveries for the coordinator (``ack``, ``ack_many``, ``nack``, ...)."""

    def __init__(self, core: CoordinatorCore) -> None:
        self._core = core

    async def ack_many(self, agent_id: AgentId, tokens: Sequence[str]) -> list[bool]:
        """Ack deliveries of one queue in one round trip; one flag per token."""
        if not tokens:
            return []
        core = self._core
        call = queue_ack.call(
            core.keys.queue(agent_id),
            dedupe_window_ms=int(core.config.dedupe_window_s * 1000),
            tokens=tokens,
        )
        outcome = await core.run("ack", call)
        if outcome.acked:
            await core.lifecycle.acked(agent_id, outcome.acked)
        core.metrics.inc_acked(str(agent_id), sum(outcome.flags))
        return outcome.flags

    async def nack(
        self, agent_id: AgentId, token: str, failure: FailureType, error: str | None
    ) -> bool:
        """Settle a delivery as failed; see ``RedisMessageCoordinator.nack``."""
        failure = FailureType(failure)
        core = self._core
        cfg = core.config
        call = queue_nack.call(
            core.keys.queue(agent_id),
            token=token,
            failure=failure.value,
            error=error or "",
            retry_attempts=cfg.retry_attempts,
            backoff_base_ms=cfg.backoff_base * 1000,
            backoff_factor=cfg.backoff_factor,
            backoff_max_ms=cfg.backoff_max * 1000,
            jitter_multiplier=1.0 + cfg.backoff_jitter * random.random(),
            dlq_max_len=cfg.dlq_max_len,
            dedupe_window_ms=int(cfg.dedupe_window_s * 1000),
        )
        outcome = await core.run("nack", call)
        if not outcome.code:
            return False
        await core.lifecycle.nacked(agent_id, outcome, error, failure)
        queue = str(agent_id)
        core.metrics.inc_nacks(queue)
        if outcome.code == RETRY_SCHEDULED:
            core.metrics.inc_retries_scheduled(queue)
        elif outcome.code == DEAD_LETTERED:
            core.metrics.inc_permanent(queue)
            core.log.info(
                "dead_lettered", queue=queue, token=token, failure=failure.value, error=error
            )
        return True

    async def extend_lease(self, agent_id: AgentId, token: str, seconds: float) -> bool:
        """Push a lease's deadline to ``seconds`` from now; False if the token is not leased.

        Raises:
            ConfigurationError: ``seconds`` is not positive.
        """
        if seconds <= 0:
            raise ConfigurationError(f"seconds must be > 0, got {seconds}")
        core = self._core
        call = queue_extend.call(
            core.keys.queue(agent_id), token=token, lease_ms=int(seconds * 1000)
        )
        deadline = await core.run("extend_lease", call, retry=True)
        return deadline > 0
