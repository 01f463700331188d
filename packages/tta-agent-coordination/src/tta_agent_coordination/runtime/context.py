"""``MessageContext``: what a handler gets — the message, its payload, and ways to answer."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache
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

_SCHEDULE_KEYWORDS = ("delay_s", "not_before")


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
        delay_s: float | None = None,
        not_before: datetime | None = None,
    ) -> MessageResult:
        """Send a message from this agent to ``recipient`` (an event by default).

        ``delay_s`` (seconds, on the Redis server clock) or ``not_before`` (an aware
        datetime) schedule it, as ``send_message`` does: it is not receivable before
        then, and ``cancel_scheduled(recipient, result.message_id)`` cancels it while it
        waits (a delayed retry, a reminder, a follow-up; docs/concepts.md, "Sending
        later").

        Raises:
            MessageValidationError: a bad schedule (negative or not finite delay, a naive
                ``not_before``, both given), from the coordinator.
            NotImplementedError: a schedule was given and the back-end's ``send_message``
                takes no ``delay_s``/``not_before`` (it cannot send later).
        """
        message = build_message(
            self.agent_id,
            recipient,
            payload,
            message_type,
            priority=priority,
            correlation_id=self._correlation(),
            headers=headers,
        )
        send = self._coordinator.send_message
        if delay_s is None and not_before is None:
            return await send(self.agent_id, recipient, message)
        scheduled = _scheduling(send, "send_message", "MessageContext.send")
        return await scheduled(
            self.agent_id, recipient, message, delay_s=delay_s, not_before=not_before
        )

    async def publish(
        self,
        payload: Mapping[str, Any] | BaseModel,
        *,
        priority: MessagePriority = MessagePriority.NORMAL,
        delay_s: float | None = None,
        not_before: datetime | None = None,
    ) -> list[MessageResult]:
        """Publish an event to every agent subscribed to events.

        ``delay_s``/``not_before`` schedule every copy, as in :meth:`send` (the copies go
        to the subscribers of now).

        Raises:
            MessageValidationError: a bad schedule, from the coordinator.
            NotImplementedError: the back-end has no subscriptions, or a schedule was
                given and its ``publish_event`` takes no ``delay_s``/``not_before``.
        """
        message = build_message(
            self.agent_id,
            self.agent_id,
            payload,
            MessageType.EVENT,
            priority=priority,
            correlation_id=self._correlation(),
        )
        publish = self._coordinator.publish_event
        if delay_s is None and not_before is None:
            return await publish(self.agent_id, message)
        scheduled = _scheduling(publish, "publish_event", "MessageContext.publish")
        return await scheduled(self.agent_id, message, delay_s=delay_s, not_before=not_before)

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


def _scheduling(method: Callable[..., Any], name: str, needed_by: str) -> Callable[..., Any]:
    """``method`` when it takes the schedule keywords (``delay_s``, ``not_before``).

    Scheduled sends are not part of the abstract ``MessageCoordinator`` contract (a
    back-end written against the original eight methods has none); a back-end offers
    them by accepting both keywords on ``send_message``/``publish_event``, as
    ``RedisMessageCoordinator`` does.

    Raises:
        NotImplementedError: ``method`` does not take both keywords.
    """
    owner = getattr(method, "__self__", None)
    func = getattr(method, "__func__", method)
    if not _takes_schedule(func):
        backend = type(owner).__name__ if owner is not None else repr(method)
        raise NotImplementedError(
            f"{backend} does not implement scheduled {name} (delay_s/not_before; "
            f"needed by {needed_by})"
        )
    return method


@lru_cache(maxsize=64)
def _takes_schedule(func: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    named = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if all(key in params and params[key].kind in named for key in _SCHEDULE_KEYWORDS):
        return True
    # A forwarding wrapper (``**kwargs``) passes them on to a back-end that has them.
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
