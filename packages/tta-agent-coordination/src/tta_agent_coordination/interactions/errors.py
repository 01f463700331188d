"""The errors of agent conversations, all under :class:`AgentMessagingError`.

``AgentMessagingError`` derives from the package's ``CoordinationError``, so code that
already catches the coordinator's errors catches these too.
"""

from __future__ import annotations

from tta_agent_coordination.errors import CoordinationError

__all__ = [
    "AgentMessagingError",
    "AgentNotFoundError",
    "ConversationBusyError",
    "ConversationEndedError",
    "ConversationTimeoutError",
    "CrossOrganizationError",
    "InboxFullError",
    "MeetingError",
    "MeetingNotFoundError",
    "MeetingStateError",
    "MeetingWaitTimeoutError",
    "MessageNotDeliveredError",
    "NoHandlerError",
    "NotInvitedError",
    "NotMeetingHostError",
    "NotYourTurnError",
    "OrganizationNotFoundError",
    "PayloadError",
    "TurnExpiredError",
]


class AgentMessagingError(CoordinationError):
    """Root of every error raised by :mod:`tta_agent_coordination.interactions`."""


class AgentNotFoundError(AgentMessagingError, LookupError):
    """The agent is not registered in the directory (``register_agent``)."""

    def __init__(self, agent: str) -> None:
        super().__init__(f"agent {agent!r} is not registered")
        self.agent = agent


class OrganizationNotFoundError(AgentMessagingError, LookupError):
    """The organization is not registered (``register_organization``)."""

    def __init__(self, organization: str) -> None:
        super().__init__(f"organization {organization!r} is not registered")
        self.organization = organization


class CrossOrganizationError(AgentMessagingError, PermissionError):
    """The recipient's organization does not accept messages from the sender's."""

    def __init__(self, sender: str, sender_org: str, recipient: str, recipient_org: str) -> None:
        super().__init__(
            f"{sender} (organization {sender_org!r}) may not address {recipient} "
            f"(organization {recipient_org!r}); list {sender_org!r} in "
            f"{recipient_org!r}'s accepts_from to allow it"
        )
        self.sender = sender
        self.recipient = recipient


class ConversationTimeoutError(AgentMessagingError, TimeoutError):
    """A handler took the message but no answer came within the timeout."""

    def __init__(self, sender: str, recipient: str, timeout: float) -> None:
        super().__init__(f"{recipient} did not answer {sender} within {timeout:g} s")
        self.sender = sender
        self.recipient = recipient
        self.timeout = timeout


class NoHandlerError(ConversationTimeoutError):
    """Nobody took the message within the timeout: no process serves the recipient.

    A subclass of :class:`ConversationTimeoutError`: both mean "no answer in time";
    this one says the message was never picked up (and is dropped unhandled when its
    expiry passes), so the recipient has no running handler.
    """

    def __init__(
        self, sender: str, recipient: str, timeout: float, detail: str | None = None
    ) -> None:
        super().__init__(sender, recipient, timeout)
        self.args = (
            detail or f"no handler of {recipient} took {sender}'s message within {timeout:g} s",
        )


class ConversationEndedError(AgentMessagingError):
    """The conversation was ended (``end_conversation``) while this side waited."""

    def __init__(self, conversation_id: str, ended_by: str | None = None) -> None:
        by = f" by {ended_by}" if ended_by else ""
        super().__init__(f"conversation {conversation_id} was ended{by}")
        self.conversation_id = conversation_id
        self.ended_by = ended_by


class ConversationBusyError(AgentMessagingError):
    """This side of the pair already waits in ``send_and_wait``: one wait per side."""

    def __init__(self, sender: str, recipient: str) -> None:
        super().__init__(
            f"{sender} already waits for {recipient} in send_and_wait; a side of a "
            "conversation waits for one answer at a time"
        )
        self.sender = sender
        self.recipient = recipient


class InboxFullError(AgentMessagingError):
    """The recipient's inbox holds its maximum of unread messages."""

    def __init__(self, recipient: str, limit: int) -> None:
        super().__init__(f"the inbox of {recipient} holds {limit} unread messages (its cap)")
        self.recipient = recipient
        self.limit = limit


class PayloadError(AgentMessagingError, ValueError):
    """The payload is not JSON (a dict, list, str, number, bool, None or model) or too big."""


class MessageNotDeliveredError(AgentMessagingError):
    """The recipient's queue refused the message (full, or Redis out of memory)."""

    def __init__(self, recipient: str, reason: str) -> None:
        super().__init__(f"the message to {recipient} was not enqueued: {reason}")
        self.recipient = recipient
        self.reason = reason


class MeetingError(AgentMessagingError):
    """Root of the meeting errors; carries the meeting's id."""

    def __init__(self, meeting_id: str, detail: str) -> None:
        super().__init__(f"meeting {meeting_id}: {detail}")
        self.meeting_id = meeting_id


class MeetingNotFoundError(MeetingError, LookupError):
    """No meeting has this id (never created, or expired from Redis)."""

    def __init__(self, meeting_id: str) -> None:
        super().__init__(meeting_id, "no such meeting")


class NotMeetingHostError(MeetingError, PermissionError):
    """Only the meeting's host may do this (start or end it)."""

    def __init__(self, meeting_id: str, agent: str) -> None:
        super().__init__(meeting_id, f"{agent} is not the host")
        self.agent = agent


class NotInvitedError(MeetingError, PermissionError):
    """The agent was not invited to the meeting."""

    def __init__(self, meeting_id: str, agent: str) -> None:
        super().__init__(meeting_id, f"{agent} was not invited")
        self.agent = agent


class NotYourTurnError(MeetingError):
    """Only the current speaker may speak."""

    def __init__(self, meeting_id: str, agent: str, speaker: str, turn: int) -> None:
        super().__init__(meeting_id, f"turn {turn} is {speaker}'s, not {agent}'s")
        self.agent = agent
        self.speaker = speaker
        self.turn = turn


class TurnExpiredError(NotYourTurnError):
    """The agent's turn timed out before its message arrived: recorded as late, refused."""

    def __init__(self, meeting_id: str, agent: str, turn: int) -> None:
        MeetingError.__init__(
            self, meeting_id, f"{agent}'s turn {turn} timed out before the message arrived"
        )
        self.agent = agent
        self.speaker = agent
        self.turn = turn


class MeetingStateError(MeetingError):
    """The meeting is not in a state that allows this (speaking before start, after end...)."""


class MeetingWaitTimeoutError(MeetingError, TimeoutError):
    """``wait_for_turn`` reached its timeout before the agent's turn came."""

    def __init__(self, meeting_id: str, agent: str, timeout: float) -> None:
        super().__init__(meeting_id, f"{agent}'s turn did not come within {timeout:g} s")
        self.agent = agent
        self.timeout = timeout
