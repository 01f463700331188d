"""Agent conversations on the coordinator: one-way messages, send-and-wait, inboxes.

::

    async with AgentMessaging(coordinator) as messaging:
        await messaging.register_organization("acme", name="Acme")
        await messaging.register_agent(AgentId("support", "s1"), organization="acme")
        answer = await messaging.sync_conversation.send_and_wait(a, b, {"q": "hi"})

See docs/conversations.md and docs/meetings.md (turn-based group conversations:
``messaging.meeting``).
"""

from tta_agent_coordination.interactions.errors import (
    AgentMessagingError,
    AgentNotFoundError,
    ConversationBusyError,
    ConversationEndedError,
    ConversationTimeoutError,
    CrossOrganizationError,
    InboxFullError,
    MeetingError,
    MeetingNotFoundError,
    MeetingStateError,
    MeetingWaitTimeoutError,
    MessageNotDeliveredError,
    NoHandlerError,
    NotInvitedError,
    NotMeetingHostError,
    NotYourTurnError,
    OrganizationNotFoundError,
    PayloadError,
    TurnExpiredError,
)
from tta_agent_coordination.interactions.handlers import ConversationContext, ConversationHandler
from tta_agent_coordination.interactions.inbox import AsyncConversation
from tta_agent_coordination.interactions.meeting_clock import MeetingClock
from tta_agent_coordination.interactions.meeting_models import (
    MeetingEvent,
    MeetingEventType,
    MeetingParticipant,
    MeetingStatus,
    MeetingStatusValue,
    ParticipantState,
    Turn,
)
from tta_agent_coordination.interactions.meetings import MeetingEventHandler, Meetings
from tta_agent_coordination.interactions.messaging import AgentMessaging
from tta_agent_coordination.interactions.models import (
    AgentProfile,
    ConversationMessage,
    MessageKind,
    Organization,
    RestoreReport,
)
from tta_agent_coordination.interactions.one_way import OneWayMessenger
from tta_agent_coordination.interactions.store import (
    InteractionStore,
    MeetingStore,
    OpenConversation,
)
from tta_agent_coordination.interactions.sync import SyncConversation

__all__ = [
    "AgentMessaging",
    "AgentMessagingError",
    "AgentNotFoundError",
    "AgentProfile",
    "AsyncConversation",
    "ConversationBusyError",
    "ConversationContext",
    "ConversationEndedError",
    "ConversationHandler",
    "ConversationMessage",
    "ConversationTimeoutError",
    "CrossOrganizationError",
    "InboxFullError",
    "InteractionStore",
    "MeetingClock",
    "MeetingError",
    "MeetingEvent",
    "MeetingEventHandler",
    "MeetingEventType",
    "MeetingNotFoundError",
    "MeetingParticipant",
    "MeetingStateError",
    "MeetingStatus",
    "MeetingStatusValue",
    "MeetingStore",
    "MeetingWaitTimeoutError",
    "Meetings",
    "MessageKind",
    "MessageNotDeliveredError",
    "NoHandlerError",
    "NotInvitedError",
    "NotMeetingHostError",
    "NotYourTurnError",
    "OneWayMessenger",
    "OpenConversation",
    "Organization",
    "OrganizationNotFoundError",
    "ParticipantState",
    "PayloadError",
    "RestoreReport",
    "SyncConversation",
    "Turn",
    "TurnExpiredError",
]
