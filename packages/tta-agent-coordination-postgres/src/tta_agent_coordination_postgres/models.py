"""What the Postgres store returns from its queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tta_agent_coordination.models import AgentId, AgentMessage
from tta_agent_coordination.store import LifecycleKind, MessageStatus

__all__ = ["StoreStats", "StoredAgent", "StoredEvent", "StoredMessage"]


class StoredEvent(BaseModel):
    """One lifecycle step of a message, from the event log."""

    model_config = ConfigDict(frozen=True)

    seq: int
    kind: LifecycleKind
    status: MessageStatus
    attempts: int
    error: str | None = None
    failure: str | None = None
    recorded_at: datetime


class StoredMessage(BaseModel):
    """The durable record of one message in one recipient's queue.

    ``message`` is None only while the store has heard of the message from a consumer
    but not yet from its sender (async durability across processes).
    """

    model_config = ConfigDict(frozen=True)

    seq: int
    message_id: str
    recipient: AgentId
    sender: AgentId | None = None
    correlation_id: str | None = None
    message: AgentMessage | None = None
    status: MessageStatus
    attempts: int
    last_error: str | None = None
    failure: str | None = None
    created_at: datetime
    updated_at: datetime
    settled_at: datetime | None = None
    events: list[StoredEvent] = Field(default_factory=list[StoredEvent])


class StoredAgent(BaseModel):
    """An agent in the durable directory."""

    model_config = ConfigDict(frozen=True)

    agent_id: AgentId
    name: str | None
    capabilities: list[str]
    metadata: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    deregistered_at: datetime | None


class StoreStats(BaseModel):
    """Counts across the whole store."""

    model_config = ConfigDict(frozen=True)

    messages: dict[MessageStatus, int]
    events: int
    agents: int

    @property
    def unsettled(self) -> int:
        """Messages a restore would enqueue again (queued, leased, retrying)."""
        return sum(n for status, n in self.messages.items() if not status.settled)
