"""The values of agent conversations: directory entries and conversation messages."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tta_agent_coordination.models import AgentId

__all__ = [
    "AgentProfile",
    "ConversationMessage",
    "MessageKind",
    "Organization",
    "RestoreReport",
]


class MessageKind(StrEnum):
    """How a conversation message was sent."""

    ONE_WAY = "one_way"
    """``one_way.send``: handled by the recipient's handler, no answer."""
    SYNC = "sync"
    """``sync_conversation.send_and_wait``: the sender waits for the answer."""
    REPLY = "reply"
    """``sync_conversation.reply`` (or a handler's return value): an answer."""
    ASYNC = "async"
    """``async_conversation.send``: kept in the recipient's inbox until read."""
    ENDED = "ended"
    """``end_conversation``'s marker in the pair's log."""


class Organization(BaseModel):
    """A namespace of agents.

    Attributes:
        org_id: its id (letters, digits, ``_ . -``).
        name: display name.
        accepts_from: other organizations whose agents may address this one's.
        created_at: first registration (Redis server clock).
    """

    model_config = ConfigDict(frozen=True)

    org_id: str
    name: str
    accepts_from: tuple[str, ...] = ()
    created_at: datetime | None = None


class AgentProfile(BaseModel):
    """An agent's directory entry.

    Attributes:
        agent_id: the agent.
        organization: its organization's id.
        name: display name.
        created_at: first registration (Redis server clock).
    """

    model_config = ConfigDict(frozen=True)

    agent_id: AgentId
    organization: str
    name: str
    created_at: datetime | None = None


class ConversationMessage(BaseModel):
    """One message between two agents, as handlers, waiters and inbox readers see it.

    Attributes:
        message_id: unique id (the idempotency key of a send).
        kind: how it was sent.
        sender: who sent it.
        recipient: who it is for.
        payload: any JSON value (a pydantic model is sent as its JSON form).
        conversation_id: ``dm-<pair digest>-<epoch>`` for a sync conversation (each
            opening of a pair has a new epoch), ``dm-<pair digest>`` otherwise.
        sent_at: when it was sent (the sender's clock; an inbox message has the Redis
            server's arrival time).
    """

    model_config = ConfigDict(frozen=True)

    message_id: str
    kind: MessageKind
    sender: AgentId
    recipient: AgentId
    payload: Any = None
    conversation_id: str
    sent_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class RestoreReport(BaseModel):
    """What ``AgentMessaging.restore`` brought back into Redis.

    Attributes:
        organizations: organizations registered again (all recorded ones).
        agents: agents registered again (all recorded ones with an organization).
        inbox_messages: unread inbox messages appended (not those still in Redis).
        conversations: open conversations whose state was missing and is back.
        meetings: open meetings whose state was missing and is back.
    """

    model_config = ConfigDict(frozen=True)

    organizations: int
    agents: int
    inbox_messages: int
    conversations: int
    meetings: int = 0
