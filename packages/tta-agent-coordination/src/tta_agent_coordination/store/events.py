"""What a message store records: message lifecycle events, agent events, pending messages.

Ordering. Events of one message can reach a store out of order (a consumer's ack may be
written before the producer's send). Each event therefore carries a *version*
``(incarnation, attempts, rank)``: ``incarnation`` is the Redis server time (ms) at which
this copy was enqueued (a replay starts a new one), ``attempts`` the deliveries so far and
``rank`` the step within one delivery. A store keeps, per message and recipient, the state
of the event with the highest version, so the result does not depend on arrival order and
writing an event twice changes nothing. See ``docs/durability.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tta_agent_coordination.models import AgentId, FailureType, MessagePriority

__all__ = [
    "AgentEvent",
    "AgentEventKind",
    "LifecycleKind",
    "MessageEvent",
    "MessageStatus",
    "PendingMessage",
]


class MessageStatus(StrEnum):
    """Where a message stands: settled (acked, dead, cancelled) or not (queued, leased, retrying).

    A scheduled send waiting for its due time is ``queued`` (its record's due time says
    when it becomes receivable).
    """

    QUEUED = "queued"
    LEASED = "leased"
    ACKED = "acked"
    RETRYING = "retrying"
    DEAD = "dead"
    CANCELLED = "cancelled"
    """A scheduled send cancelled before it was due (``cancel_scheduled``)."""

    @property
    def settled(self) -> bool:
        """Whether the message is finished (acked, dead or cancelled) and needs no restore."""
        return self in (MessageStatus.ACKED, MessageStatus.DEAD, MessageStatus.CANCELLED)


class LifecycleKind(StrEnum):
    """One step in a message's life, as the coordinator reports it to the store."""

    SENT = "sent"
    LEASED = "leased"
    ACKED = "acked"
    RETRYING = "retrying"
    DEAD = "dead"
    REPLAYED = "replayed"
    RESTORED = "restored"
    CANCELLED = "cancelled"

    @property
    def status(self) -> MessageStatus:
        """The status a message has after this step."""
        return _STATUS[self]

    @property
    def rank(self) -> int:
        """The order of this step within one delivery (see the module docstring)."""
        return _RANK[self]


_STATUS = {
    LifecycleKind.SENT: MessageStatus.QUEUED,
    LifecycleKind.LEASED: MessageStatus.LEASED,
    LifecycleKind.ACKED: MessageStatus.ACKED,
    LifecycleKind.RETRYING: MessageStatus.RETRYING,
    LifecycleKind.DEAD: MessageStatus.DEAD,
    LifecycleKind.REPLAYED: MessageStatus.QUEUED,
    LifecycleKind.RESTORED: MessageStatus.QUEUED,
    LifecycleKind.CANCELLED: MessageStatus.CANCELLED,
}
# Within one delivery: enqueued (0) < leased (1) < returned to the queue (2) < settled (3).
_RANK = {
    LifecycleKind.SENT: 0,
    LifecycleKind.REPLAYED: 0,
    LifecycleKind.LEASED: 1,
    LifecycleKind.RETRYING: 2,
    LifecycleKind.RESTORED: 2,
    LifecycleKind.ACKED: 3,
    LifecycleKind.DEAD: 3,
    LifecycleKind.CANCELLED: 3,
}


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """One lifecycle change of one message in one recipient's queue.

    A plain slotted dataclass, not a pydantic model: the coordinator builds one per
    message on its hot path from values it has already validated, and a model's
    construction cost showed in the durability benchmark.

    Attributes:
        kind: what happened.
        message_id: the message's id.
        recipient: whose queue it is in.
        incarnation: Redis server time (ms) when this copy was enqueued; 0 when unknown
            (a duplicate send), which only creates a record that does not exist yet.
        attempts: deliveries so far (0 before the first).
        envelope: the ``AgentMessage`` JSON, on ``sent``, ``replayed`` and ``restored``.
        error: the last error, when there is one.
        failure: the failure type of a ``dead`` or ``retrying`` step.
        available_at_ms: when the message becomes receivable (ms, Redis server clock):
            the due time of a scheduled send, on ``sent`` and ``restored``; 0 for ready
            at once (every other step).
    """

    kind: LifecycleKind
    message_id: str
    recipient: AgentId
    incarnation: int = 0
    attempts: int = 0
    envelope: str | None = None
    error: str | None = None
    failure: FailureType | None = None
    available_at_ms: int = 0

    @property
    def status(self) -> MessageStatus:
        """The message's status after this event."""
        return self.kind.status

    @property
    def version(self) -> tuple[int, int, int]:
        """``(incarnation, attempts, rank)``: a store keeps the state of the highest."""
        return (self.incarnation, self.attempts, self.kind.rank)


class AgentEventKind(StrEnum):
    """A change in the agent directory."""

    REGISTERED = "registered"
    DEREGISTERED = "deregistered"


class AgentEvent(BaseModel):
    """A registration or deregistration reported by a registry."""

    model_config = ConfigDict(frozen=True)

    kind: AgentEventKind
    agent_id: AgentId
    name: str | None = None
    capabilities: list[str] = Field(default_factory=list[str])
    metadata: dict[str, Any] = Field(default_factory=dict[str, Any])


class PendingMessage(BaseModel):
    """An unsettled message as a store holds it, ready to be enqueued again by a restore."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    recipient: AgentId
    envelope: str
    priority: MessagePriority = MessagePriority.NORMAL
    attempts: int = 0
    last_error: str | None = None
    incarnation: int = 0
    expires_at_ms: int = 0
    available_at_ms: int = 0
    """Due time of a scheduled send (ms, Redis server clock): a restore puts a message
    still not due back in the delayed set. 0 (or a time passed): ready at once."""
    failure: FailureType | None = None
    """Set for a message that is dead: a restore puts it back in its queue's dead-letter
    queue with this failure type and ``last_error`` (never delivered; replayable), not in
    a ready stream. ``malformed`` is refused: only a deliverable message is restored."""

    @field_validator("failure")
    @classmethod
    def _deliverable(cls, value: FailureType | None) -> FailureType | None:
        if value is FailureType.MALFORMED:
            raise ValueError("a malformed message cannot be restored (it has no envelope)")
        return value
