"""Sending: validate and serialise messages, enqueue them per queue in one round trip.

Each send becomes a :class:`~tta_agent_coordination.redis.scripts.queue_send.SendItem`;
the items of one queue go to one ``queue_send`` script call, and the calls of every
queue in the batch go in one pipeline (with the queue index update, when due).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from pydantic_core import PydanticSerializationError

from tta_agent_coordination.errors import (
    CircuitBreakerOpenError,
    MessageValidationError,
    PayloadTooLargeError,
)
from tta_agent_coordination.models import AgentId, AgentMessage, MessageResult
from tta_agent_coordination.redis.codec import (
    assemble_model,
    priority_index,
    stamped_envelope_json,
    to_ms,
)
from tta_agent_coordination.redis.core import UNAVAILABLE_ERRORS, CoordinatorCore
from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.queue_index import QueueIndex
from tta_agent_coordination.redis.scripts import queue_send
from tta_agent_coordination.redis.scripts.queue_send import (
    ENQUEUED,
    QUEUE_FULL_CODE,
    SendItem,
    SendOutcome,
)
from tta_agent_coordination.resilience.cancellation import CancellationWatch
from tta_agent_coordination.store import StoreError

__all__ = ["QUEUE_FULL", "Sender", "check_address"]

QUEUE_FULL = "queue full"
"""The ``MessageResult.error`` of a send refused because the queue holds ``queue_size``."""


class Sender:
    """Enqueues messages for the coordinator (``send_message``, ``send_many``, ...)."""

    def __init__(self, core: CoordinatorCore, index: QueueIndex) -> None:
        self._core = core
        self._index = index

    async def send_many(self, messages: Sequence[AgentMessage]) -> list[MessageResult]:
        """Enqueue ``messages`` (each to its own recipient) in one round trip.

        See ``RedisMessageCoordinator.send_many``.
        """
        core = self._core
        if not messages:
            return []
        items = [self._prepare(m) for m in messages]
        queues = [core.keys.queue(m.recipient) for m in messages]
        watch = CancellationWatch()
        try:
            codes = await core.guard.run("send", lambda: self._enqueue(queues, items), retry=True)
        except UNAVAILABLE_ERRORS as exc:
            watch.reraise(exc)
            reason = (
                f"redis unavailable: {exc}"
                if not isinstance(exc, CircuitBreakerOpenError)
                else str(exc)
            )
            core.log.warning("send_failed", error=reason, count=len(items))
            for keys in queues:
                core.metrics.inc_delivered_error(str(keys.agent_id))
            return [
                MessageResult(
                    message_id=m.message_id, delivered=False, error=reason, recipient=m.recipient
                )
                for m in messages
            ]
        results = [
            self._result(m, keys, code)
            for m, keys, code in zip(messages, queues, codes, strict=True)
        ]
        try:
            await core.lifecycle.sent(messages, items, codes)
        except StoreError as exc:
            # The messages are in Redis and will be delivered, but not durable: report
            # them undelivered so that the caller sends again (dedupe makes it safe).
            reason = f"store unavailable: {exc}"
            recorded = sum(1 for code in codes if code >= 0)
            core.log.warning("store_write_failed", error=reason, count=recorded)
            return [
                r.model_copy(update={"delivered": False, "error": reason}) if r.delivered else r
                for r in results
            ]
        return results

    def _prepare(self, message: AgentMessage) -> SendItem:
        core = self._core
        try:
            envelope = stamped_envelope_json(message)
        except PydanticSerializationError as exc:
            raise MessageValidationError(
                f"message {message.message_id!r} cannot be serialised to JSON: {exc}"
            ) from None
        size = len(envelope.encode("utf-8"))
        limit = core.config.max_payload_bytes
        if size > limit:
            raise PayloadTooLargeError(message.message_id, size, limit)
        core.lifecycle.check_envelope(message.message_id, envelope)
        expires = to_ms(message.expires_at) if message.expires_at is not None else 0
        return SendItem(priority_index(message.priority), message.message_id, envelope, expires)

    async def _enqueue(self, queues: list[QueueKeys], items: list[SendItem]) -> list[int]:
        """One ``queue_send`` call per queue, all in one round trip.

        ``items[i]`` goes to ``queues[i]``. Returns one code per item, in order: its
        incarnation (the server time it was enqueued at) when enqueued, else the script's
        code (0 duplicate, -1 full). New queues are added to the queue index in the same
        round trip.
        """
        core = self._core
        size = core.config.queue_size
        now = time.monotonic()
        first = queues[0]
        if all(keys is first for keys in queues) and not self._index.is_stale(first.agent_id, now):
            # The common case (one message, or a batch to one queue): one script call.
            outcome = await core.scripts.call(queue_send.call(first, queue_size=size, items=items))
            codes = [0] * len(items)
            _spread(codes, range(len(items)), outcome)
            return codes
        by_queue: dict[QueueKeys, list[int]] = {}
        for i, keys in enumerate(queues):
            by_queue.setdefault(keys, []).append(i)
        calls = [
            queue_send.call(keys, queue_size=size, items=[items[i] for i in idx])
            for keys, idx in by_queue.items()
        ]
        stale = self._index.stale((keys.agent_id for keys in by_queue), now)
        codes = [0] * len(items)
        extra = [self._index.add_command(stale)] if stale else []
        outcomes, extra_results = await core.scripts.run_pipelined(calls, extra=extra)
        for idx, outcome in zip(by_queue.values(), outcomes, strict=True):
            _spread(codes, idx, outcome)
        if stale and not isinstance(extra_results[-1], BaseException):
            self._index.mark_added(stale, now)
        return codes

    def _result(self, message: AgentMessage, keys: QueueKeys, code: int) -> MessageResult:
        queue = str(keys.agent_id)
        if code == QUEUE_FULL_CODE:
            self._core.metrics.inc_delivered_error(queue)
            return assemble_model(
                MessageResult,
                {
                    "message_id": message.message_id,
                    "delivered": False,
                    "error": QUEUE_FULL,
                    "recipient": message.recipient,
                    "duplicate": False,
                },
            )
        self._core.metrics.inc_delivered_ok(queue)
        # Not validated again: every field is already valid; this is the send hot path.
        return assemble_model(
            MessageResult,
            {
                "message_id": message.message_id,
                "delivered": True,
                "error": None,
                "recipient": message.recipient,
                "duplicate": code == 0,
            },
        )


def _spread(codes: list[int], idx: Iterable[int], outcome: SendOutcome) -> None:
    """Spread one queue's outcome over ``codes``.

    An enqueued message gets the server time, its incarnation, so every code stays -1
    full, 0 duplicate, > 0 enqueued.
    """
    now = outcome.server_now_ms
    for i, code in zip(idx, outcome.codes, strict=True):
        codes[i] = now if int(code) == ENQUEUED else int(code)


def check_address(sender: AgentId, recipient: AgentId, message: AgentMessage) -> None:
    """Refuse a message whose own addresses differ from the ones it is sent with.

    Raises:
        MessageValidationError: ``message.recipient`` or ``message.sender`` differ.
    """
    if message.recipient != recipient:
        raise MessageValidationError(
            f"message {message.message_id!r} is addressed to {message.recipient}, "
            f"but was sent to {recipient}"
        )
    if message.sender != sender:
        raise MessageValidationError(
            f"message {message.message_id!r} has sender {message.sender}, but was sent by {sender}"
        )
