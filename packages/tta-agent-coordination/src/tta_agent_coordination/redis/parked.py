"""What a blocking receive learned about its queues, so the next one can wait at once.

A receive script that reserves fewer messages than it was asked for has drained its
queue's streams, and returns what a blocking caller must wait for: the last generated id
of each ready stream, the wake stream's last id, and when the next lease expires or
retry falls due (``queue_receive.lua``). That is a :class:`QueueView`.

A worker that has just taken the one message a wake-up brought calls ``receive_batch``
again at once; running the receive script of each of its queues first would find them
as the last call left them, at the cost of one round trip per queue per message. Instead
the receiver keeps the views of its last blocking call (a :class:`Parked`) and the next
call of the same queues starts by waiting on them. Nothing is missed: an entry added
since gets a newer id and wakes the wait. What no stream signals is a lease shortened or
created since with an earlier deadline than the view's wake-up (another consumer's short
visibility): an inherited view is therefore trusted for :data:`PARKED_TRUST_S` only, and
the coordinator drops every view when this process shortens or releases a lease.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.scripts.queue_receive import ReceiveOutcome

__all__ = ["PARKED_TRUST_S", "Parked", "QueueView"]

PARKED_TRUST_S = 1.0
"""How long a view taken by an earlier call is waited on before its script runs again."""


@dataclass(frozen=True, slots=True)
class QueueView:
    """One drained queue: the ids to wait after, and its next wake-up (loop time)."""

    streams: Mapping[str, str]
    """Ready streams and wake stream -> the id to wait for entries after."""
    wake_at: float | None
    """Event-loop time when a lease expires or a retry falls due (None: nothing held)."""
    taken: float
    """Event-loop time of the script call that saw it."""

    @classmethod
    def of(cls, keys: QueueKeys, outcome: ReceiveOutcome, now: float) -> QueueView:
        """The view of a drained ``outcome`` (``outcome.drained``) of ``keys``, seen at ``now``."""
        streams = dict(zip(keys.ready, (text(i) for i in outcome.last_ids), strict=True))
        streams[keys.wake] = text(outcome.wake_id)
        wake_at = None
        if outcome.wake_at_ms >= 0:
            wake_at = now + max(0.001, (outcome.wake_at_ms - outcome.server_now_ms) / 1000)
        return cls(streams, wake_at, now)

    @property
    def trusted_until(self) -> float:
        """Event-loop time after which a later call runs the script again instead."""
        return self.taken + PARKED_TRUST_S

    def due(self, woken: set[str], now: float) -> bool:
        """True when one of its streams is in ``woken`` or its wake-up is past at ``now``."""
        if self.wake_at is not None and self.wake_at <= now:
            return True
        return not woken.isdisjoint(self.streams)


@dataclass(frozen=True, slots=True)
class Parked:
    """The views a blocking receive ended with, for the next call of the same queues."""

    views: Mapping[AgentId, QueueView]

    def fresh(self, now: float) -> dict[AgentId, QueueView]:
        """The views still to be trusted at ``now`` (taken less than PARKED_TRUST_S ago)."""
        return {q: v for q, v in self.views.items() if now < v.trusted_until}
