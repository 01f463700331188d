"""The requester's side of request/reply over Redis: one reply inbox per coordinator.

A waiting requester names its inbox in the request's ``REPLY_INBOX_HEADER``; the
replier pushes the reply there with the ``reply_push`` script. The inbox is one Redis list
per requesting coordinator, bounded and expiring, read by one blocking pop for all of the
requester's pending requests. The messages (requests, replies, their headers) are built by
:mod:`tta_agent_coordination.replies`. The inbox is a public address (``ReplyAddress``,
``ReplyRouter.address``): other modules route replies to it (:meth:`ReplyRouter.deliver_to`)
and await one by correlation id (:meth:`ReplyRouter.expect`), as ``request()`` does.

Why a list and one blocking pop rather than the coordinator's ``StreamWaiter``: the pop
runs only while replies are awaited and serves every one of them, and a process usually
has one coordinator, so the waiter would save at most one connection per process while
the inbox's format (read by other processes' repliers) would change.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Generator, Mapping
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
from tta_agent_coordination.observability.metrics import TimingMetrics
from tta_agent_coordination.observability.tracing import Tracing
from tta_agent_coordination.redis.codec import stamped_envelope_json, text
from tta_agent_coordination.redis.core import CoordinatorCore
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.lua import ScriptSet
from tta_agent_coordination.redis.scripts import reply_push
from tta_agent_coordination.replies import (
    REPLY_INBOX_HEADER,
    ReplyAddress,
    build_message,
    build_reply,
    expects_reply,
    raise_for_reply,
)

__all__ = [
    "MAX_INBOX_REPLIES",
    "CallFn",
    "PendingReply",
    "Replier",
    "ReplyRouter",
    "SendFn",
    "timed_request",
]

MAX_INBOX_REPLIES = 10_000
"""Replies an inbox keeps at most (the newest); nobody reading it must not grow it."""

_DRAIN_BATCH = 256
_POP_BLOCK_S = 1.0

SendFn = Callable[[AgentId, AgentId, AgentMessage], Awaitable[MessageResult]]
"""Enqueues a message (the coordinator's ``send_message``)."""
CallFn = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""Runs one Redis call under the coordinator's guard."""


class PendingReply:
    """A reply awaited by correlation id in a coordinator's inbox (``expect_reply``).

    Registered when it is made, so a reply that arrives before :meth:`wait` is kept for
    it. Use it as an async context manager (or call :meth:`close`) so that it stops
    waiting when the caller gives up.
    """

    def __init__(
        self,
        router: ReplyRouter,
        correlation_id: str,
        future: asyncio.Future[AgentMessage],
        recipient: str,
    ) -> None:
        self._router = router
        self._future = future
        self._recipient = recipient
        self.correlation_id = correlation_id
        """The correlation id the reply must carry."""

    async def wait(self, timeout: float) -> AgentMessage:  # noqa: ASYNC109 - the API
        """The reply, as it came (``replies.raise_for_reply`` raises an error reply).

        Raises:
            ConfigurationError: ``timeout`` is not positive.
            RequestTimeoutError: no reply within ``timeout`` seconds (it still waits:
                call :meth:`wait` again, or :meth:`close`).
            CoordinationError: the coordinator was closed.
        """
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout}")
        try:
            async with asyncio.timeout(timeout):
                # shield: a timeout must not cancel the future a later wait() awaits.
                return await asyncio.shield(self._future)
        except TimeoutError:
            raise RequestTimeoutError(self._recipient, self.correlation_id, timeout) from None

    def close(self) -> None:
        """Stop waiting; a reply arriving later is dropped (idempotent)."""
        self._router.forget(self.correlation_id, self._future)

    def __await__(self) -> Generator[Any, None, AgentMessage]:
        """``await pending``: the reply, with no deadline of its own (see :meth:`wait`)."""
        return asyncio.shield(self._future).__await__()

    async def __aenter__(self) -> PendingReply:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


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
        tracing: the coordinator's spans (a ``request`` span around each request).
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
        tracing: Tracing | None = None,
    ) -> None:
        if reply_ttl_s <= 0:
            raise ConfigurationError(f"reply_ttl_s must be > 0, got {reply_ttl_s}")
        self._redis = redis
        self._keys = keys
        self._scripts = scripts
        self._call = call
        self._send = send
        self._tracing = tracing if tracing is not None else Tracing()
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
    def address(self) -> ReplyAddress:
        """This inbox as an address others deliver replies to."""
        return ReplyAddress(inbox=self._inbox_id, ttl_ms=int(self._ttl_ms))

    def expect(self, correlation_id: str, recipient: AgentId | None = None) -> PendingReply:
        """Await the reply carrying ``correlation_id`` in this inbox, from now on.

        Call it before the message that asks for the reply is sent, so that no reply
        can come first. ``recipient`` (who is asked) only names it in errors.

        Raises:
            CoordinationError: the router is closed.
            MessageValidationError: a reply with this correlation id is already awaited.
        """
        if self._closing:
            raise CoordinationError("the coordinator is closed; no new requests")
        if correlation_id in self._waiters:
            raise MessageValidationError(
                f"a request with correlation id {correlation_id!r} is already waiting"
            )
        future: asyncio.Future[AgentMessage] = asyncio.get_running_loop().create_future()
        self._waiters[correlation_id] = future
        self._ensure_reader()
        who = str(recipient) if recipient is not None else f"reply inbox {self._inbox_id}"
        return PendingReply(self, correlation_id, future, who)

    def forget(self, correlation_id: str, future: asyncio.Future[AgentMessage]) -> None:
        """Stop awaiting ``correlation_id`` (if ``future`` is still the one awaiting it)."""
        if self._waiters.get(correlation_id) is future:
            del self._waiters[correlation_id]
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()  # retrieved: a close() after aclose() logs nothing

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
            "headers": {**base.headers, **(headers or {}), **self.address.headers()},
        }
        if expire and base.expires_at is None:
            # Nobody waits for the answer after the timeout: an unhandled request is
            # dead-lettered then instead of running (an LLM call, say) for nobody.
            update["expires_at"] = datetime.now(UTC) + timedelta(seconds=timeout)
        message = base.model_copy(update=update)
        pending = self.expect(correlation_id, recipient)
        trace = self._tracing.request(message)  # current: the send descends from it
        try:
            async with trace, asyncio.timeout(timeout):
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
                reply = await pending
                trace.replied(reply)
        except TimeoutError:
            raise RequestTimeoutError(str(recipient), correlation_id, timeout) from None
        finally:
            pending.close()
        return raise_for_reply(reply)

    async def deliver(self, request: AgentMessage, reply: AgentMessage) -> None:
        """Push ``reply`` into the inbox named by ``request`` (the replier's side).

        Raises:
            MessageValidationError: ``request`` names no inbox, or an invalid one.
        """
        address = ReplyAddress.from_headers(request.headers, int(self._ttl_ms))
        if address is None:
            raise MessageValidationError(
                f"request {request.message_id!r} names no reply inbox ({REPLY_INBOX_HEADER})"
            )
        await self.deliver_to(address, reply)

    async def deliver_to(self, address: ReplyAddress, reply: AgentMessage) -> None:
        """Push ``reply`` into the inbox at ``address`` (any coordinator's, any process).

        The owner's :meth:`expect` (or ``request()``) matches it by ``correlation_id``;
        one nobody awaits is dropped there. The inbox keeps its newest
        :data:`MAX_INBOX_REPLIES` and expires ``address.ttl_ms`` after the last push.

        Raises:
            CoordinatorUnavailableError: Redis failed.
        """
        push = reply_push.call(
            self._keys.reply_inbox(address.inbox),
            envelope=stamped_envelope_json(reply),
            ttl_ms=str(address.ttl_ms),
            max_replies=MAX_INBOX_REPLIES,
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
                more: list[Any] = []
                if popped:  # its waiter first; drain only while other requests wait
                    self._dispatch(popped[1])
                    if any(not w.done() for w in self._waiters.values()):
                        more = await self._call("request", self._drain) or []
                failures = 0
            except CoordinationError as exc:
                # Redis is down or the breaker is open: the waiters' timeouts bound the
                # wait; keep trying, a little slower each time.
                failures += 1
                self._log.warning("reply_inbox_read_failed", error=str(exc))
                await asyncio.sleep(min(1.0, 0.05 * 2**failures))
                continue
            for item in more:
                self._dispatch(item)

    def _drain(self) -> Any:
        return self._redis.lpop(self._inbox, _DRAIN_BATCH)

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
                # Marked retrieved: a PendingReply nobody awaits any more logs nothing;
                # one that is awaited still raises it.
                waiter.exception()
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
        core: the coordinator's shared parts (client, keys, scripts, guarded calls, log).
        send: enqueues a message (the coordinator's ``send_message``).
        reply_ttl_s: how long the router's inbox keeps replies nobody reads.
    """

    def __init__(self, core: CoordinatorCore, send: SendFn, reply_ttl_s: float) -> None:
        self._core = core
        self._send = send
        self._reply_ttl_s = reply_ttl_s
        self._router: ReplyRouter | None = None
        self._log = core.log

    @property
    def router(self) -> ReplyRouter:
        """This coordinator's reply router (made now if need be).

        Raises:
            ConfigurationError: the coordinator's ``reply_ttl_s`` is not positive.
        """
        if self._router is None:
            core = self._core
            self._router = ReplyRouter(
                core.redis,
                core.keys,
                core.scripts,
                core.call,
                self._send,
                reply_ttl_s=self._reply_ttl_s,
                tracing=core.tracing,
            )
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
        inbox = request.headers.get(REPLY_INBOX_HEADER)
        with self._core.tracing.reply(response, inbox) as trace:
            if inbox is not None:
                await self.router.deliver(request, response)
                return True
            outcome = await self._send(sender, response.recipient, response)
            trace.done(outcome.delivered)
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


async def timed_request(
    request: Awaitable[AgentMessage], timing: TimingMetrics, queue: str
) -> AgentMessage:
    """Await ``request`` and report its round trip to ``timing`` (not when cancelled).

    The outcome is ``ok``, ``timeout``, ``not_delivered`` or ``error`` (the handler's
    error reply, or any other failure).
    """
    started = time.perf_counter()
    outcome = "error"
    try:
        reply = await request
        outcome = "ok"
        return reply
    except RequestTimeoutError:
        outcome = "timeout"
        raise
    except RequestNotDeliveredError:
        outcome = "not_delivered"
        raise
    except asyncio.CancelledError:
        outcome = ""  # nobody waited for an answer: not a round trip
        raise
    finally:
        if outcome:
            timing.observe_request(queue, time.perf_counter() - started, outcome)
