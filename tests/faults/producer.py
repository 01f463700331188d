"""A producer that remembers what it was told: which sends reported ``delivered=True``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    CoordinationError,
    MessageType,
    RedisMessageCoordinator,
)

SENDER = AgentId("faults", "producer")


def event(
    message_id: str, recipient: AgentId, payload: dict[str, Any] | None = None
) -> AgentMessage:
    """An EVENT from the producer to ``recipient``."""
    return AgentMessage(
        message_id=message_id,
        sender=SENDER,
        recipient=recipient,
        message_type=MessageType.EVENT,
        payload=payload or {},
    )


@dataclass
class Producer:
    """Sends numbered events round-robin to ``recipients`` and records every outcome."""

    coordinator: RedisMessageCoordinator
    recipients: Sequence[AgentId]
    tag: str = "m"
    payload: Callable[[int], dict[str, Any]] = field(default=lambda _i: {})
    delivered: dict[str, AgentId] = field(default_factory=dict)
    """Message id -> queue, for every send that reported ``delivered=True``."""
    refused: dict[str, str] = field(default_factory=dict)
    """Message id -> error, for every send that reported ``delivered=False`` or raised."""
    sent_at: dict[str, float] = field(default_factory=dict)
    """Message id -> wall-clock time its send returned ``delivered=True``."""
    next_index: int = 0

    def delivered_to(self, agent: AgentId) -> set[str]:
        """Ids delivered to ``agent``'s queue."""
        return {m for m, q in self.delivered.items() if q == agent}

    async def send_batch(self, size: int) -> int:
        """Send ``size`` messages in one ``send_many``; how many reported delivered."""
        messages = []
        for _ in range(size):
            i = self.next_index
            self.next_index += 1
            recipient = self.recipients[i % len(self.recipients)]
            messages.append(event(f"{self.tag}-{i:06d}", recipient, self.payload(i)))
        try:
            results = await self.coordinator.send_many(messages)
        except CoordinationError as exc:
            for m in messages:
                self.refused[m.message_id] = f"{type(exc).__name__}: {exc}"
            return 0
        now = time.time()
        ok = 0
        for m, r in zip(messages, results, strict=True):
            if r.delivered:
                self.delivered[m.message_id] = m.recipient
                self.sent_at[m.message_id] = now
                ok += 1
            else:
                self.refused[m.message_id] = r.error or "not delivered"
        return ok

    async def run(
        self,
        *,
        total: int,
        batch: int = 10,
        pause_s: float = 0.02,
        stop: asyncio.Event | None = None,
        stop_on_refusal: bool = False,
    ) -> None:
        """Send ``total`` messages in batches, pausing between them (bounded by ``total``)."""
        while self.next_index < total and not (stop is not None and stop.is_set()):
            ok = await self.send_batch(min(batch, total - self.next_index))
            if stop_on_refusal and ok < batch:
                return
            await asyncio.sleep(pause_s)
