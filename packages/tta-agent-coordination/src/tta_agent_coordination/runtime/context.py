"""``MessageContext``: what a handler gets — the message, its payload, and ways to answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from tta_agent_coordination.interfaces import MessageCoordinator
from tta_agent_coordination.models import (
    AgentId,
    AgentMessage,
    MessagePriority,
    MessageResult,
    MessageType,
    ReceivedMessage,
)
from tta_agent_coordination.replies import build_message

__all__ = ["MessageContext"]

P = TypeVar("P")


class MessageContext(Generic[P]):
    """The message a handler works on, with the means to talk to other agents.

    ``payload`` is the validated payload model when the handler declared one, else the
    payload dict. Messages sent through the context carry the handled message's
    ``correlation_id``, so a whole conversation can be followed.
    """

    __slots__ = ("_coordinator", "_lease_lost", "agent_id", "payload", "received")

    def __init__(
        self,
        coordinator: MessageCoordinator,
        agent_id: AgentId,
        received: ReceivedMessage,
        payload: P,
    ) -> None:
        self._coordinator = coordinator
        self._lease_lost = False
        self.agent_id: AgentId = agent_id
        """The agent (queue) this worker runs as."""
        self.received: ReceivedMessage = received
        """The delivery: token, attempts, lease deadline."""
        self.payload: P = payload
        """The payload, validated into the handler's model when it declared one."""

    @property
    def message(self) -> AgentMessage:
        """The message being handled."""
        return self.received.message

    @property
    def token(self) -> str:
        """The delivery's lease token."""
        return self.received.token

    @property
    def attempts(self) -> int:
        """How many times this message has been delivered, this delivery included."""
        return self.received.attempts

    @property
    def lease_lost(self) -> bool:
        """True when the lease could not be extended (another consumer may have it now).

        The handler may go on, but its ack will fail and the message will be handled
        again elsewhere: a long handler can check this and give up early.
        """
        return self._lease_lost

    def _mark_lease_lost(self) -> None:
        self._lease_lost = True

    def _correlation(self) -> str:
        return self.message.correlation_id or self.message.message_id

    async def send(
        self,
        recipient: AgentId,
        payload: Mapping[str, Any] | BaseModel,
        *,
        message_type: MessageType = MessageType.EVENT,
        priority: MessagePriority = MessagePriority.NORMAL,
        headers: Mapping[str, str] | None = None,
    ) -> MessageResult:
        """Send a message from this agent to ``recipient`` (an event by default)."""
        message = build_message(
            self.agent_id,
            recipient,
            payload,
            message_type,
            priority=priority,
            correlation_id=self._correlation(),
            headers=headers,
        )
        return await self._coordinator.send_message(self.agent_id, recipient, message)

    async def publish(
        self,
        payload: Mapping[str, Any] | BaseModel,
        *,
        priority: MessagePriority = MessagePriority.NORMAL,
    ) -> list[MessageResult]:
        """Publish an event to every agent subscribed to events."""
        message = build_message(
            self.agent_id,
            self.agent_id,
            payload,
            MessageType.EVENT,
            priority=priority,
            correlation_id=self._correlation(),
        )
        return await self._coordinator.publish_event(self.agent_id, message)

    async def request(
        self,
        recipient: AgentId,
        payload: Mapping[str, Any] | BaseModel,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - a request's deadline is its API
        priority: MessagePriority = MessagePriority.NORMAL,
    ) -> AgentMessage:
        """Ask ``recipient`` and wait for its reply (see ``MessageCoordinator.request``).

        The lease of the message being handled is kept extended while this waits.
        """
        return await self._coordinator.request(
            self.agent_id, recipient, payload, timeout=timeout, priority=priority
        )

    async def extend_lease(self, seconds: float) -> bool:
        """Push this delivery's lease to ``seconds`` from now (the worker also does it)."""
        queue = self.received.queue or self.agent_id
        extended = await self._coordinator.extend_lease(queue, self.token, seconds)
        if not extended:
            self._lease_lost = True
        return extended
