"""Request/reply messages, without any transport: building requests and replies, reading them.

A request is an ordinary ``REQUEST`` message with a ``correlation_id`` and ``reply_to``;
a requester that waits for the answer also names its *reply inbox* in a header
(:data:`REPLY_INBOX_HEADER`; :class:`ReplyAddress` is that address as a value other
modules can keep, send along and deliver to). The handler's result, or its error,
becomes a ``RESPONSE`` message built by :func:`build_reply`; :func:`raise_for_reply`
turns an error reply back into :class:`~tta_agent_coordination.errors.RemoteHandlerError`
at the requester. How replies travel (a Redis inbox per requester) is
:mod:`tta_agent_coordination.redis.reply_router`'s job; see ``docs/worker.md``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tta_agent_coordination.errors import MessageValidationError, RemoteHandlerError
from tta_agent_coordination.models import (
    AgentId,
    AgentMessage,
    FailureType,
    MessagePriority,
    MessageType,
)

__all__ = [
    "REPLY_INBOX_HEADER",
    "REPLY_STATUS_HEADER",
    "REPLY_TTL_HEADER",
    "ReplyAddress",
    "build_message",
    "build_reply",
    "expects_reply",
    "raise_for_reply",
    "reply_payload",
]

REPLY_INBOX_HEADER = "tta-reply-inbox"
"""Header naming the requester's reply inbox (set by ``request``)."""

REPLY_TTL_HEADER = "tta-reply-ttl-ms"
"""Header with how long the inbox keeps replies nobody reads, in milliseconds."""

REPLY_STATUS_HEADER = "tta-reply-status"
"""Header of a reply: ``ok``, or ``error`` with the error in the payload's ``error``."""

_INBOX_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


class ReplyAddress(BaseModel):
    """Where replies go: one coordinator's reply inbox, as a serialisable value.

    ``coordinator.reply_inbox`` is the address of a coordinator's own inbox. Put it in
    a request with :meth:`headers` (``request()`` does so itself), keep it in a
    conversation's or a plan's state (it is plain JSON), and deliver to it from any
    process with ``coordinator.deliver_reply(address, reply)``; the owner awaits a reply
    by its ``correlation_id`` with ``coordinator.expect_reply``. See docs/concepts.md,
    "Request and reply".

    Attributes:
        inbox: the inbox id (letters, digits, ``_ . -``; it becomes part of a Redis key).
        ttl_ms: how long the inbox keeps replies nobody reads, in milliseconds.
    """

    model_config = ConfigDict(frozen=True)

    inbox: str
    ttl_ms: int = Field(default=60_000, gt=0)

    @field_validator("inbox")
    @classmethod
    def _check_inbox(cls, value: str) -> str:
        if not _INBOX_RE.fullmatch(value):
            raise ValueError(
                f"invalid reply inbox id {value!r}: use 1-128 letters, digits, '_', '.', '-'"
            )
        return value

    def headers(self) -> dict[str, str]:
        """The request headers that name this address (``REPLY_INBOX_HEADER``, TTL)."""
        return {REPLY_INBOX_HEADER: self.inbox, REPLY_TTL_HEADER: str(self.ttl_ms)}

    @classmethod
    def from_headers(
        cls, headers: Mapping[str, str], default_ttl_ms: int = 60_000
    ) -> ReplyAddress | None:
        """The address a request's headers name; None when they name none.

        Raises:
            MessageValidationError: the headers name an invalid inbox or TTL (another
                client wrote them): nothing may be delivered there.
        """
        inbox = headers.get(REPLY_INBOX_HEADER)
        if inbox is None:
            return None
        try:
            return cls(inbox=inbox, ttl_ms=int(headers.get(REPLY_TTL_HEADER, default_ttl_ms)))
        except ValueError as exc:  # pydantic's ValidationError is one
            raise MessageValidationError(f"invalid reply address in the headers: {exc}") from None


def _jsonable(value: Any) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): v for k, v in cast(Mapping[Any, Any], value).items()}
    raise MessageValidationError(
        f"a payload must be a dict or a pydantic model, got {type(value).__name__}"
    )


def reply_payload(result: Any) -> dict[str, Any]:
    """The payload of a reply built from a handler's return value.

    ``None`` gives ``{}``, a mapping or pydantic model is the payload itself, and any
    other JSON value ``v`` is wrapped as ``{"result": v}``.
    """
    if result is None:
        return {}
    if isinstance(result, BaseModel | Mapping):
        return _jsonable(result)
    return {"result": result}


def build_message(
    sender: AgentId,
    recipient: AgentId,
    payload_or_message: AgentMessage | Mapping[str, Any] | BaseModel,
    message_type: MessageType,
    *,
    priority: MessagePriority = MessagePriority.NORMAL,
    correlation_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> AgentMessage:
    """An ``AgentMessage`` from ``sender`` to ``recipient``.

    A ready message is returned as it is (its addresses must match); a dict or pydantic
    model becomes the payload of a new message of ``message_type``.

    Raises:
        MessageValidationError: the message's addresses differ from the arguments, or
            the payload is neither a mapping nor a pydantic model.
    """
    if isinstance(payload_or_message, AgentMessage):
        if payload_or_message.sender != sender or payload_or_message.recipient != recipient:
            raise MessageValidationError(
                f"message {payload_or_message.message_id!r} goes from "
                f"{payload_or_message.sender} to {payload_or_message.recipient}, not from "
                f"{sender} to {recipient}"
            )
        return payload_or_message
    return AgentMessage(
        sender=sender,
        recipient=recipient,
        message_type=message_type,
        payload=_jsonable(payload_or_message),
        priority=priority,
        correlation_id=correlation_id,
        headers=dict(headers or {}),
    )


def expects_reply(message: AgentMessage) -> bool:
    """Whether ``message`` is a request somebody waits to have answered."""
    return message.message_type is MessageType.REQUEST and (
        REPLY_INBOX_HEADER in message.headers or message.reply_to is not None
    )


def build_reply(
    request: AgentMessage,
    sender: AgentId,
    result: Any = None,
    *,
    error: BaseException | None = None,
    failure: FailureType = FailureType.PERMANENT,
) -> AgentMessage:
    """The ``RESPONSE`` to ``request``: the handler's result, or its error.

    The reply's id is derived from the request's, so that a request handled twice (a
    redelivery after a crash) is answered with the same id and deduplicated in a queue.
    """
    if error is None:
        payload = reply_payload(result)
        status = "ok"
    else:
        payload = {
            "error": {
                "type": type(error).__name__,
                "message": str(error),
                "failure": FailureType(failure).value,
            }
        }
        status = "error"
    digest = hashlib.sha256(request.message_id.encode("utf-8")).hexdigest()[:32]
    return AgentMessage(
        message_id=f"reply-{digest}",
        sender=sender,
        recipient=request.reply_to or request.sender,
        message_type=MessageType.RESPONSE,
        payload=payload,
        priority=request.priority,
        correlation_id=request.correlation_id or request.message_id,
        headers={REPLY_STATUS_HEADER: status},
    )


def raise_for_reply(reply: AgentMessage) -> AgentMessage:
    """Return ``reply``, or raise the remote handler's error it carries.

    Raises:
        RemoteHandlerError: the reply says the handler failed.
    """
    if reply.headers.get(REPLY_STATUS_HEADER) != "error":
        return reply
    raw = reply.payload.get("error")
    details: dict[str, Any] = (
        {str(k): v for k, v in cast(Mapping[Any, Any], raw).items()}
        if isinstance(raw, Mapping)
        else {}
    )
    raise RemoteHandlerError(
        str(reply.sender),
        str(details.get("type", "Error")),
        str(details.get("message", "")),
        str(details.get("failure", FailureType.PERMANENT.value)),
    )
