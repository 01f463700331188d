"""The requester's side of request/reply over Redis: one reply inbox per coordinator.

A waiting requester names its inbox in the request's ``REPLY_INBOX_HEADER``; the
replier pushes the reply there with the ``reply_push`` script. The inbox is one Redis list
per requesting coordinator, bounded and expiring, read by one blocking pop for all of the
requester's pending requests. The messages themselves (requests, replies, their headers)
are built by the transport-free :mod:`tta_agent_coordination.replies`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import (
    ConfigurationError,
    CoordinationError,
    MessageValidationError,
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
    SendStatus,
)
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.redis.codec import stamped_envelope_json, text
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.lua import ScriptSet
from tta_agent_coordination.redis.scripts import reply_push
from tta_agent_coordination.replies import (
    REPLY_INBOX_HEADER,
    REPLY_TTL_HEADER,
    build_message,
    build_reply,
    expects_reply,
    raise_for_reply,
)

__all__ = ["MAX_INBOX_REPLIES", "CallFn", "Replier", "ReplyRouter", "SendFn"]

MAX_INBOX_REPLIES = 10_000
"""Replies an inbox keeps at most (the newest); nobody reading it must not grow it."""

_DRAIN_BATCH = 256
_POP_BLOCK_S = 1.0

SendFn = Callable[[AgentId, AgentId, AgentMessage], Awaitable[MessageResult]]
"""Enqueues a message (the coordinator's ``send_message``)."""
CallFn = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""Runs one Redis call under the coordinator's guard."""


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
        redis: RedisClient,
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
        """Send a request and wait for its reply; see ``RedisMessageCoordinator.request``.

        Raises:
            ConfigurationError: ``timeout`` is not positive.
            CoordinationError: the router is closed.
            MessageValidationError: the request is invalid, or a request with the same
                correlation id is already waiting.
            RequestNotDeliveredError: the request was not enqueued (refused, or Redis
                unavailable before any attempt). When the send's outcome is unknown
                (``SendStatus.UNKNOWN``), the request waits for its reply instead.
            RequestTimeoutError: no reply within ``timeout`` seconds.
            RemoteHandlerError: the reply carries the handler's error.
        """
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
                    if result.status is not SendStatus.UNKNOWN:
                        raise RequestNotDeliveredError(str(recipient), correlation_id, result.error)
                    # Maybe enqueued (a send that timed out after Redis ran it): if it
                    # was, its reply comes; if not, the caller gets RequestTimeoutError
                    # at the deadline. Never "not delivered" for what may be handled.
                    self._log.warning(
                        "request_outcome_unknown",
                        correlation_id=correlation_id,
                        recipient=str(recipient),
                        error=result.error,
                    )
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
        push = reply_push.call(
            inbox, envelope=stamped_envelope_json(reply), ttl_ms=ttl, max_replies=MAX_INBOX_REPLIES
        )
        await self._call("reply", lambda: self._scripts.call(push))

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


class Replier:
    """The coordinator's request/reply: a router for its own requests, and answers.

    The :class:`ReplyRouter` is made on first use; an answer goes to the requester's
    inbox, or as a ``RESPONSE`` message to its ``reply_to``.

    Args:
        make_router: builds the router the first time a request waits or a reply goes to
            an inbox.
        send: enqueues a message (the coordinator's ``send_message``).
        log: the coordinator's logger.
    """

    def __init__(self, make_router: Callable[[], ReplyRouter], send: SendFn, log: Any) -> None:
        self._make_router = make_router
        self._send = send
        self._router: ReplyRouter | None = None
        self._log = log

    @property
    def router(self) -> ReplyRouter:
        """This coordinator's reply router (made now if need be)."""
        if self._router is None:
            self._router = self._make_router()
        return self._router

    async def reply(
        self,
        sender: AgentId,
        request: AgentMessage,
        result: Any,
        *,
        error: BaseException | None,
        failure: FailureType,
    ) -> bool:
        """Answer ``request``; see ``RedisMessageCoordinator.reply``."""
        if not expects_reply(request):
            return False
        response = build_reply(request, sender, result, error=error, failure=failure)
        if REPLY_INBOX_HEADER in request.headers:
            await self.router.deliver(request, response)
            return True
        outcome = await self._send(sender, response.recipient, response)
        if not outcome.delivered:
            self._log.warning(
                "reply_not_delivered",
                request=request.message_id,
                recipient=str(response.recipient),
                status=outcome.status.value,
                error=outcome.error,
            )
        return outcome.delivered

    async def aclose(self) -> None:
        """Close the router, if one was made."""
        if self._router is not None:
            await self._router.aclose()
