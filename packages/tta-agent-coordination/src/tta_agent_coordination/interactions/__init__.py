"""Agent conversations on the coordinator: one-way messages, send-and-wait, inboxes.

::

    async with AgentMessaging(coordinator) as messaging:
        await messaging.register_organization("acme", name="Acme")
        await messaging.register_agent(AgentId("support", "s1"), organization="acme")
        answer = await messaging.sync_conversation.send_and_wait(a, b, {"q": "hi"})

See docs/conversations.md. Meetings (turn-based group conversations) will share the
directory, keys and scripts layout of this package.
"""

from tta_agent_coordination.interactions.errors import (
    AgentMessagingError,
    AgentNotFoundError,
    ConversationBusyError,
    ConversationEndedError,
    ConversationTimeoutError,
    CrossOrganizationError,
    InboxFullError,
    MessageNotDeliveredError,
    NoHandlerError,
    OrganizationNotFoundError,
    PayloadError,
)
from tta_agent_coordination.interactions.handlers import ConversationContext, ConversationHandler
from tta_agent_coordination.interactions.inbox import AsyncConversation
from tta_agent_coordination.interactions.messaging import AgentMessaging
from tta_agent_coordination.interactions.models import (
    AgentProfile,
    ConversationMessage,
    MessageKind,
    Organization,
    RestoreReport,
)
from tta_agent_coordination.interactions.one_way import OneWayMessenger
from tta_agent_coordination.interactions.store import InteractionStore, OpenConversation
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
    "MessageKind",
    "MessageNotDeliveredError",
    "NoHandlerError",
    "OneWayMessenger",
    "OpenConversation",
    "Organization",
    "OrganizationNotFoundError",
    "PayloadError",
    "RestoreReport",
    "SyncConversation",
]
