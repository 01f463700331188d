"""``RedisMessageCoordinator`` under its original constructor, prefix and counters.

It is the core's coordinator (atomic Lua scripts, type-wide queues, a dead-letter stream)
with the original's defaults and a few translations, each documented in
``docs/TTA_MIGRATION_GUIDE.md``:

- ``RedisMessageCoordinator(redis, key_prefix="ao")`` strips a trailing ``:`` from the
  prefix and owns a compat :class:`~tta_agents.compat.metrics.MessageMetrics` (the
  original ``coordinator.metrics.snapshot()``), unless given one.
- ``receive(agent, visibility_timeout=0)`` leases for 1 ms (the original's "expired at
  once"); the core refuses a zero lease.
- ``metrics.retry.last_backoff_seconds`` is set on every retry this coordinator schedules.

What it cannot keep is raised or warned about, never silently changed: the key layout
(``ao:sched:...`` is gone; migrate with ``tta-coord tta migrate-keys``), the audit list,
the DLQ as a list (it is a stream: ``dead_letters()``), the reservation token format, and
an expired lease now counts as a delivery attempt.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from tta_agent_coordination import (
    AgentId,
    FailureType,
    ReceivedMessage,
)
from tta_agent_coordination import (
    RedisMessageCoordinator as CoreRedisMessageCoordinator,
)
from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import ConfigurationError
from tta_agents.compat.metrics import MessageMetrics

__all__ = ["DEFAULT_KEY_PREFIX", "ZERO_VISIBILITY_S", "RedisMessageCoordinator"]

DEFAULT_KEY_PREFIX = "ao"
"""The original's key prefix ("agent orchestration")."""

ZERO_VISIBILITY_S = 0.001
"""The lease a ``visibility_timeout`` of 0 gets: it has expired by the next call."""

_TRACKED_LEASES = 10_000
"""How many unsettled leases the coordinator remembers for ``last_backoff_seconds``."""


class RedisMessageCoordinator(CoreRedisMessageCoordinator):
    """The core coordinator with TTA's original constructor and metrics.

    Args:
        redis: an asyncio Redis client.
        key_prefix: the key prefix (``"ao"``, a trailing ``:`` is dropped).
        metrics: the original-style counters; a new :class:`MessageMetrics` by default.
        **kwargs: anything the core coordinator takes (``queue_size``,
            ``retry_attempts``, ``backoff_base``, ``store``, ``guard``...).

    Raises:
        ConfigurationError: an invalid prefix or setting.
    """

    def __init__(
        self,
        redis: RedisClient,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        metrics: MessageMetrics | None = None,
        **kwargs: Any,
    ) -> None:
        prefix = key_prefix.rstrip(":")
        if not prefix:
            raise ConfigurationError(f"key_prefix {key_prefix!r} is empty once ':' is stripped")
        self._compat_metrics = metrics if metrics is not None else MessageMetrics()
        super().__init__(redis, prefix, metrics=self._compat_metrics, **kwargs)
        # token -> attempts of that delivery, to report the nominal backoff of a nack.
        self._lease_attempts: OrderedDict[str, int] = OrderedDict()

    @property
    def metrics(self) -> MessageMetrics:
        """The original-style counters (``coordinator.metrics.snapshot()``)."""
        return self._compat_metrics

    async def receive(
        self, agent_id: AgentId, visibility_timeout: float = 5, block: float | None = None
    ) -> ReceivedMessage | None:
        """Reserve the next message (see the core); ``visibility_timeout=0`` leases for 1 ms.

        ``queue_message.delivery_attempts`` counts this delivery (1 on the first; the
        original counted earlier failures, 0 on the first).
        """
        received = await super().receive(agent_id, _visibility(visibility_timeout), block)
        if received is not None:
            self._remember(received)
        return received

    async def receive_batch(
        self,
        agent_id: AgentId,
        count: int,
        *,
        visibility_timeout: float = 5,
        block: float | None = None,
        also: Sequence[AgentId] = (),
        interrupt: asyncio.Event | None = None,
    ) -> list[ReceivedMessage]:
        """Reserve up to ``count`` messages (see the core); a zero lease is 1 ms."""
        batch = await super().receive_batch(
            agent_id,
            count,
            visibility_timeout=_visibility(visibility_timeout),
            block=block,
            also=also,
            interrupt=interrupt,
        )
        for received in batch:
            self._remember(received)
        return batch

    async def ack(self, agent_id: AgentId, token: str) -> bool:
        """Settle a delivery as done (see the core)."""
        self._lease_attempts.pop(token, None)
        return await super().ack(agent_id, token)

    async def ack_many(self, agent_id: AgentId, tokens: Sequence[str]) -> list[bool]:
        """Ack many deliveries of one queue (see the core)."""
        for token in tokens:
            self._lease_attempts.pop(token, None)
        return await super().ack_many(agent_id, tokens)

    async def nack(
        self,
        agent_id: AgentId,
        token: str,
        failure: FailureType = FailureType.TRANSIENT,
        error: str | None = None,
    ) -> bool:
        """Settle a delivery as failed (see the core) and note the retry's nominal backoff."""
        attempts = self._lease_attempts.pop(token, None)
        settled = await super().nack(agent_id, token, failure, error)
        cfg = self.config
        if (
            settled
            and attempts is not None
            and FailureType(failure) is not FailureType.PERMANENT
            and attempts <= cfg.retry_attempts
        ):
            delay = min(cfg.backoff_base * cfg.backoff_factor ** (attempts - 1), cfg.backoff_max)
            self._compat_metrics.record_backoff(delay)
        return settled

    def _remember(self, received: ReceivedMessage) -> None:
        self._lease_attempts[received.token] = received.attempts
        while len(self._lease_attempts) > _TRACKED_LEASES:
            self._lease_attempts.popitem(last=False)


def _visibility(seconds: float) -> float:
    # The original accepted 0 ("expired at once"); the core needs a positive lease.
    return ZERO_VISIBILITY_S if seconds == 0 else seconds
