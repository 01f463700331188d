"""Request/reply over the per-agent queues.

A request is an ordinary ``REQUEST`` message with a ``correlation_id`` and ``reply_to``;
a requester that waits for the answer also names its *reply inbox* in a header. The
handler's result (or its error) goes back to that inbox: one Redis list per requesting
coordinator, bounded and expiring, read by one blocking pop for all of the requester's
pending requests. A request without an inbox (sent by an agent that wants the answer as
a message in its own queue) is answered with a ``RESPONSE`` message to ``reply_to``.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import redis.asyncio as aioredis
from pydantic import BaseModel, ValidationError

from tta_agent_coordination.errors import (
    ConfigurationError,
    CoordinationError,
    MessageValidationError,
    RemoteHandlerError,
    RequestNotDeliveredError,
    RequestTimeoutError,
)
from tta_agent_coordination.models import (
    AgentId,
    AgentMessage,
    FailureType,
    MessagePriority,
    MessageResult,
    MessageType,
)
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.redis.codec import stamped_envelope_json, text
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.lua import ScriptSet

__all__ = [
    "REPLY_INBOX_HEADER",
    "REPLY_STATUS_HEADER",
    "REPLY_TTL_HEADER",
    "ReplyRouter",
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

_MAX_INBOX_REPLIES = 10_000
_DRAIN_BATCH = 256
_POP_BLOCK_S = 1.0

SendFn = Callable[[AgentId, AgentId, AgentMessage], Awaitable[MessageResult]]
CallFn = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]


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


class ReplyRouter:
    """One requester's inbox: sends requests and hands each reply to its waiter.

    One background task pops the inbox while requests are pending (and stops when none
    are), so a thousand concurrent requests hold one Redis connection, not a thousand.
    A reply that arrives after its requester gave up is dropped.

    Args:
        redis: the client the inbox is read with.
        keys: the key space of the coordinator.
        scripts: the coordinator's Lua scripts.
        call: runs one Redis call under the coordinator's guard (errors become typed).
        send: enqueues a message (the coordinator's ``send_message``).
        reply_ttl_s: how long an inbox keeps replies that nobody reads.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: KeySpace,
        scripts: ScriptSet,
        call: CallFn,
        send: SendFn,
        *,
        reply_ttl_s: float = 60.0,
    ) -> None:
        if reply_ttl_s <= 0:
            raise ConfigurationError(f"reply_ttl_s must be > 0, got {reply_ttl_s}")
        self._redis = redis
        self._keys = keys
        self._scripts = scripts
        self._call = call
        self._send = send
        self._inbox_id = uuid.uuid4().hex
        self._inbox = keys.reply_inbox(self._inbox_id)
        self._ttl_ms = str(max(1, round(reply_ttl_s * 1000)))
        self._waiters: dict[str, asyncio.Future[AgentMessage]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._log = get_logger(__name__, inbox=self._inbox_id)

    @property
    def inbox_id(self) -> str:
        """The id requests carry in their ``REPLY_INBOX_HEADER``."""
        return self._inbox_id

    @property
    def pending(self) -> int:
        """Requests waiting for their reply."""
        return len(self._waiters)

    async def request(
        self,
        sender: AgentId,
        recipient: AgentId,
        payload_or_message: AgentMessage | Mapping[str, Any] | BaseModel,
        *,
        timeout: float,  # noqa: ASYNC109 - a request's deadline is its API
        priority: MessagePriority = MessagePriority.NORMAL,
        headers: Mapping[str, str] | None = None,
        expire: bool = True,
    ) -> AgentMessage:
        """Send a request and wait for its reply; see ``RedisMessageCoordinator.request``."""
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout}")
        if self._closing:
            raise CoordinationError("the coordinator is closed; no new requests")
        base = build_message(
            sender, recipient, payload_or_message, MessageType.REQUEST, priority=priority
        )
        correlation_id = base.correlation_id or base.message_id
        if correlation_id in self._waiters:
            raise MessageValidationError(
                f"a request with correlation id {correlation_id!r} is already waiting"
            )
        update: dict[str, Any] = {
            "message_type": MessageType.REQUEST,
            "correlation_id": correlation_id,
            "reply_to": base.reply_to or sender,
            "headers": {
                **base.headers,
                **(headers or {}),
                REPLY_INBOX_HEADER: self._inbox_id,
                REPLY_TTL_HEADER: self._ttl_ms,
            },
        }
        if expire and base.expires_at is None:
            # Nobody waits for the answer after the timeout: an unhandled request is
            # dead-lettered then instead of running (an LLM call, say) for nobody.
            update["expires_at"] = datetime.now(UTC) + timedelta(seconds=timeout)
        message = base.model_copy(update=update)
        future: asyncio.Future[AgentMessage] = asyncio.get_running_loop().create_future()
        self._waiters[correlation_id] = future
        try:
            async with asyncio.timeout(timeout):
                self._ensure_reader()
                result = await self._send(sender, recipient, message)
                if not result.delivered:
                    raise RequestNotDeliveredError(str(recipient), correlation_id, result.error)
                reply = await future
        except TimeoutError:
            raise RequestTimeoutError(str(recipient), correlation_id, timeout) from None
        finally:
            self._waiters.pop(correlation_id, None)
        return raise_for_reply(reply)

    async def deliver(self, request: AgentMessage, reply: AgentMessage) -> None:
        """Push ``reply`` into the inbox named by ``request`` (the replier's side)."""
        inbox_id = request.headers[REPLY_INBOX_HEADER]
        ttl = request.headers.get(REPLY_TTL_HEADER, self._ttl_ms)
        inbox = self._keys.reply_inbox(inbox_id)
        envelope = stamped_envelope_json(reply)
        await self._call(
            "reply",
            lambda: self._scripts.run("reply_push", [inbox], [envelope, ttl, _MAX_INBOX_REPLIES]),
        )

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(
                self._read_loop(), name=f"reply-inbox-{self._inbox_id}"
            )

    async def _read_loop(self) -> None:
        failures = 0
        while self._waiters and not self._closing:
            try:
                popped = await self._call(
                    "request",
                    lambda: self._redis.blpop([self._inbox], timeout=_POP_BLOCK_S),
                )
                raw: list[Any] = []
                if popped:
                    raw.append(popped[1])
                    more = await self._call(
                        "request", lambda: self._redis.lpop(self._inbox, _DRAIN_BATCH)
                    )
                    raw.extend(more or [])
                failures = 0
            except CoordinationError as exc:
                # Redis is down or the breaker is open: the waiters' timeouts bound the
                # wait; keep trying, a little slower each time.
                failures += 1
                self._log.warning("reply_inbox_read_failed", error=str(exc))
                await asyncio.sleep(min(1.0, 0.05 * 2**failures))
                continue
            for item in raw:
                self._dispatch(item)

    def _dispatch(self, item: Any) -> None:
        try:
            reply = AgentMessage.model_validate_json(text(item))
        except ValidationError as exc:
            self._log.error("undecodable_reply", error=str(exc))
            return
        waiter = self._waiters.get(reply.correlation_id or "")
        if waiter is None or waiter.done():
            self._log.info("late_reply_dropped", correlation_id=reply.correlation_id)
            return
        waiter.set_result(reply)

    async def aclose(self) -> None:
        """Stop reading the inbox; pending requests fail with ``CoordinationError``."""
        self._closing = True
        for correlation_id, waiter in list(self._waiters.items()):
            if not waiter.done():
                waiter.set_exception(
                    CoordinationError(
                        f"the coordinator was closed while request {correlation_id!r} waited"
                    )
                )
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            # The reader notices _closing within one pop (1 s); cancelling a blocking
            # pop can leave some clients' connections in a bad state.
            done, _ = await asyncio.wait({reader}, timeout=_POP_BLOCK_S * 2)
            if not done:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
