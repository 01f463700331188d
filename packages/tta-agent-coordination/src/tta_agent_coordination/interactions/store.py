"""The record of conversations: what a durable store (e.g. Postgres) implements.

The core never imports a store: :class:`InteractionStore` is the protocol
``AgentMessaging(store=...)`` writes through. Redis holds the live state; the store
keeps the history and can bring unread inbox messages and open conversations back after
a Redis loss (:meth:`InteractionStore.unread_inbox`,
:meth:`InteractionStore.open_conversations`; ``AgentMessaging.restore``). Every write
is idempotent (keyed by message id, conversation id and epoch), so a retried write
records once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from tta_agent_coordination.interactions.meeting_models import MeetingEvent, MeetingStatus
from tta_agent_coordination.interactions.models import (
    AgentProfile,
    ConversationMessage,
    Organization,
)
from tta_agent_coordination.models import AgentId

__all__ = ["InteractionStore", "MeetingStore", "OpenConversation"]


class OpenConversation(Protocol):
    """An open sync conversation as a store gives it back."""

    @property
    def conversation_id(self) -> str:
        """``dm-<pair digest>-<epoch>``."""
        ...

    @property
    def agent_a(self) -> AgentId:
        """The first agent of the sorted pair."""
        ...

    @property
    def agent_b(self) -> AgentId:
        """The second agent of the sorted pair."""
        ...


@runtime_checkable
class InteractionStore(Protocol):
    """Records organizations, agents, conversations and their messages."""

    async def record_organization(self, organization: Organization) -> None:
        """Insert or update an organization."""
        ...

    async def record_agent(self, profile: AgentProfile) -> None:
        """Insert or update an agent's directory entry."""
        ...

    async def record_conversation(
        self, conversation_id: str, a: AgentId, b: AgentId, status: str
    ) -> None:
        """Record that the conversation is ``open`` or ``ended`` (upsert)."""
        ...

    async def record_message(self, message: ConversationMessage) -> None:
        """Record a message (once per ``message_id`` and recipient)."""
        ...

    async def record_read(self, agent: AgentId, message_ids: Sequence[str]) -> None:
        """Record that ``agent`` read these inbox messages."""
        ...

    async def unread_inbox(self, agent: AgentId | None = None) -> list[ConversationMessage]:
        """The inbox messages not read yet (of one agent, or all), oldest first."""
        ...

    async def open_conversations(self) -> Sequence[OpenConversation]:
        """The conversations recorded as open."""
        ...

    async def load_directory(self) -> tuple[list[Organization], list[AgentProfile]]:
        """Every recorded organization, and every agent recorded in one."""
        ...


@runtime_checkable
class MeetingStore(Protocol):
    """Records meetings: an :class:`InteractionStore` that also has these keeps meetings.

    A store without them keeps working for conversations (meetings are then not
    recorded). Writes are idempotent: a meeting upserts by id, an event by its id.
    """

    async def record_meeting(self, status: MeetingStatus) -> None:
        """Insert or update a meeting and its participants."""
        ...

    async def record_meeting_event(self, event: MeetingEvent) -> None:
        """Record one event (once per ``meeting_id`` and ``event_id``)."""
        ...

    async def open_meetings(self) -> Sequence[MeetingStatus]:
        """The meetings not ended, with their participants, as last recorded."""
        ...
