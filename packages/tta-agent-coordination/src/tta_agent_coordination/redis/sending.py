"""Sending: validate and serialise messages, enqueue them per queue in one round trip.

Each send becomes a :class:`~tta_agent_coordination.redis.scripts.queue_send.SendItem`;
the items of one queue go to one ``queue_send`` script call, and the calls of every
queue in the batch go in one pipeline (with the queue index update, when due).

Every outcome is a result (``MessageResult.status``), never an exception: enqueued or
duplicate; refused by Redis (queue full, out of memory: not in the queue); unavailable
(no command reached Redis); or unknown, when an attempt failed after its command may
have reached Redis, even if a later attempt was refused (docs/concepts.md, "Sending").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from pydantic_core import PydanticSerializationError
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    MaxConnectionsError,
    OutOfMemoryError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tta_agent_coordination.errors import (
    CircuitBreakerOpenError,
    MessageValidationError,
    PayloadTooLargeError,
)
from tta_agent_coordination.models import AgentId, AgentMessage, MessageResult, SendStatus
from tta_agent_coordination.redis.codec import (
    assemble_model,
    priority_index,
    stamped_envelope_json,
    to_ms,
)
from tta_agent_coordination.redis.core import UNAVAILABLE_ERRORS, CoordinatorCore
from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.queue_index import QueueIndex
from tta_agent_coordination.redis.replication import confirm_writes, run_confirmed
from tta_agent_coordination.redis.scheduling import Schedule, schedules
from tta_agent_coordination.redis.scripts import queue_send
from tta_agent_coordination.redis.scripts.queue_send import (
    QUEUE_FULL_CODE,
    SCHEDULED,
    SendItem,
    SendOutcome,
)
from tta_agent_coordination.redis.store_marker import StoreMarker
from tta_agent_coordination.resilience.cancellation import CancellationWatch
from tta_agent_coordination.store import StoreError

__all__ = ["OUT_OF_MEMORY", "QUEUE_FULL", "Sender", "check_address", "outcome_unknown"]

QUEUE_FULL = "queue full"
"""The ``MessageResult.error`` of a send refused because the queue holds ``queue_size``."""
OUT_OF_MEMORY = "redis out of memory"
"""The ``MessageResult.error`` of a send refused because Redis is over ``maxmemory``
(with ``maxmemory-policy noeviction``): nothing of it was written."""

_OUT_OF_MEMORY_CODE = -2
"""Code of a message whose queue's script call Redis refused with OOM (not a script code)."""

_RETRY_SAME_ID = (
    "the message may have been enqueued; send it again with the same message_id "
    "(dedupe makes that safe), not a new one"
)


def outcome_unknown(exc: BaseException) -> bool:
    """True when a send that failed with ``exc`` may have been applied by Redis.

    A timeout or a connection lost while a command was in flight may come after Redis
    ran it. Known not to have reached Redis: an open breaker, an exhausted connection
    pool, a refused connect or bad credentials (no command was written), and an error
    reply (Redis answered: a script that fails writes nothing before its first write,
    see ``queue_send.lua``).
    """
    if isinstance(exc, (CircuitBreakerOpenError, MaxConnectionsError)):
        return False
    if isinstance(exc, (AuthenticationError, AuthorizationError, ResponseError)):
        return False
    if isinstance(exc, RedisConnectionError) and not isinstance(exc, RedisTimeoutError):
        # redis-py words a failed connect "Error ... connecting to host:port": the
        # command was never written. Any other connection error may follow a write.
        return "connecting to" not in str(exc)
    # Timeouts, dropped connections, and anything not known to be safe: unknown.
    return not isinstance(exc, ConnectionRefusedError)


class Sender:
    """Enqueues messages for the coordinator (``send_message``, ``send_many``, ...).

    Before the first send it lets the coordinator's ``StoreMarker`` mark the prefix as
    recorded by its store (or warn that it is not).
    """

    def __init__(self, core: CoordinatorCore, index: QueueIndex, marker: StoreMarker) -> None:
        self._core = core
        self._index = index
        self._marker = marker

    async def send(
        self,
        messages: Sequence[AgentMessage],
        delay_s: float | Sequence[float | None] | None = None,
        not_before: datetime | Sequence[datetime | None] | None = None,
    ) -> list[MessageResult]:
        """Check the schedule (``scheduling.schedules``), then :meth:`send_many`.

        See ``RedisMessageCoordinator.send_many``.
        """
        plan = schedules(messages, delay_s, not_before)
        if self._marker.pending:
            await self._marker.observe()
        return await self.send_many(messages, plan)

    async def broadcast(
        self,
        sender: AgentId,
        message: AgentMessage,
        recipients: Sequence[AgentId],
        delay_s: float | None = None,
        not_before: datetime | None = None,
    ) -> list[MessageResult]:
        """One copy of ``message`` per recipient; see ``RedisMessageCoordinator.broadcast_message``.

        Raises:
            MessageValidationError: ``message.sender`` differs from ``sender``.
        """
        if message.sender != sender:
            raise MessageValidationError(
                f"message {message.message_id!r} has sender {message.sender}, "
                f"but was sent by {sender}"
            )
        distinct = list(dict.fromkeys(recipients))
        copies = [message.model_copy(update={"recipient": r}) for r in distinct]
        results = dict(zip(distinct, await self.send(copies, delay_s, not_before), strict=True))
        return [results[r] for r in recipients]

    async def send_many(
        self, messages: Sequence[AgentMessage], plan: Sequence[Schedule] | None = None
    ) -> list[MessageResult]:
        """Enqueue ``messages`` (each to its own recipient) in one round trip.

        ``plan`` holds one ``(delay_ms, not_before_ms)`` per message
        (``scheduling.schedules``); None sends every message at once. With tracing on,
        the messages sent are copies carrying their send span's context in ``headers``
        (``observability.tracing``).
        """
        if not messages:
            return []
        trace = self._core.tracing.start_send(messages)
        if trace is None:
            return await self._send_many(messages, plan)
        with trace:
            results = await self._send_many(trace.messages, plan)
            trace.record(results)
            return results

    async def _send_many(
        self, messages: Sequence[AgentMessage], plan: Sequence[Schedule] | None
    ) -> list[MessageResult]:
        core = self._core
        if plan is None:
            items = [self._prepare(m) for m in messages]
        else:
            items = [self._prepare(m, *s) for m, s in zip(messages, plan, strict=True)]
        queues = [core.keys.queue(m.recipient) for m in messages]
        watch = CancellationWatch()
        # The guard raises only the last attempt's error; an earlier attempt that timed
        # out may have been applied (issue 23): remember that it did.
        in_doubt: list[BaseException] = []

        unconfirmed: set[int] = set()

        async def attempt() -> tuple[list[int], list[int]]:
            unconfirmed.clear()
            try:
                return await self._enqueue(queues, items, unconfirmed)
            except BaseException as exc:
                if outcome_unknown(exc):
                    in_doubt.append(exc)
                raise

        try:
            codes, dues = await core.guard.run("send", attempt, retry=True)
        except UNAVAILABLE_ERRORS as exc:
            watch.reraise(exc)
            return self._failed(messages, queues, exc, in_doubt)
        results = [
            self._result(m, keys, code, due)
            for m, keys, code, due in zip(messages, queues, codes, dues, strict=True)
        ]
        if unconfirmed:
            results = [
                self._unreplicated(r) if i in unconfirmed and r.delivered else r
                for i, r in enumerate(results)
            ]
        if in_doubt and _OUT_OF_MEMORY_CODE in codes:
            # Refused without a look at the dedupe set: an earlier attempt may have
            # enqueued these (a queue-full or duplicate code, in contrast, is definite).
            results = [
                self._unknown(r, in_doubt[0]) if c == _OUT_OF_MEMORY_CODE else r
                for r, c in zip(results, codes, strict=True)
            ]
        try:
            await core.lifecycle.sent(messages, items, codes, dues)
        except StoreError as exc:
            # The messages are in Redis and will be delivered, but not durable: report
            # them unknown so that the caller sends again with the same id (dedupe makes
            # it safe, and records them in the store then).
            reason = f"store unavailable: {exc}; {_RETRY_SAME_ID}"
            recorded = sum(1 for code in codes if code >= 0)
            core.log.warning("store_write_failed", error=reason, count=recorded)
            results = [
                r.model_copy(
                    update={"delivered": False, "error": reason, "status": SendStatus.UNKNOWN}
                )
                if r.delivered
                else r
                for r in results
            ]
        # redis-py may swallow a cancellation that lands as a command completes (its
        # wait_for race on Python 3.11): the send then returns normally and the task
        # runs on, cancelled in name only. Deliver it here, as any await would have; the
        # messages stand (they were enqueued and recorded), and sending them again with
        # the same ids is safe.
        watch.reraise()
        return results

    def _unreplicated(self, result: MessageResult) -> MessageResult:
        config = self._core.config
        reason = (
            f"not confirmed by {config.wait_replicas} replica(s) within "
            f"{config.wait_timeout_s} s: a failover now would lose it; {_RETRY_SAME_ID}"
        )
        self._core.log.warning("send_unreplicated", message_id=result.message_id)
        return result.model_copy(
            update={"delivered": False, "error": reason, "status": SendStatus.UNKNOWN}
        )

    @staticmethod
    def _unknown(result: MessageResult, first: BaseException) -> MessageResult:
        reason = f"outcome unknown ({_describe(first)}, then {result.error}): {_RETRY_SAME_ID}"
        return result.model_copy(update={"error": reason, "status": SendStatus.UNKNOWN})

    def _failed(
        self,
        messages: Sequence[AgentMessage],
        queues: list[QueueKeys],
        exc: BaseException,
        in_doubt: list[BaseException],
    ) -> list[MessageResult]:
        """The results of a send whose every attempt failed with an error (``exc`` last)."""
        core = self._core
        if in_doubt:
            status = SendStatus.UNKNOWN
            reason = f"outcome unknown ({_describe(in_doubt[0])}, then {exc}): {_RETRY_SAME_ID}"
        elif isinstance(exc, CircuitBreakerOpenError):
            status, reason = SendStatus.UNAVAILABLE, str(exc)
        elif isinstance(exc, OutOfMemoryError):
            status, reason = SendStatus.REFUSED, OUT_OF_MEMORY
        elif isinstance(exc, ResponseError) and len(set(queues)) == 1:
            status, reason = SendStatus.REFUSED, f"redis refused the send: {exc}"
        elif isinstance(exc, ResponseError):
            # One queue's call failed in a pipeline of several: the others may have
            # been applied, and the error does not say which.
            status = SendStatus.UNKNOWN
            reason = f"outcome unknown (redis error: {exc}): {_RETRY_SAME_ID}"
        else:
            status, reason = SendStatus.UNAVAILABLE, f"redis unavailable: {exc}"
        core.log.warning("send_failed", error=reason, status=status.value, count=len(messages))
        for keys in queues:
            core.metrics.inc_delivered_error(str(keys.agent_id))
        return [
            MessageResult(
                message_id=m.message_id,
                delivered=False,
                error=reason,
                recipient=m.recipient,
                status=status,
            )
            for m in messages
        ]

    def _prepare(
        self, message: AgentMessage, delay_ms: int = 0, not_before_ms: int = 0
    ) -> SendItem:
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
        return SendItem(
            priority_index(message.priority),
            message.message_id,
            envelope,
            expires,
            delay_ms,
            not_before_ms,
        )

    async def _enqueue(
        self, queues: list[QueueKeys], items: list[SendItem], unconfirmed: set[int]
    ) -> tuple[list[int], list[int]]:
        """One ``queue_send`` call per queue, all in one round trip.

        ``items[i]`` goes to ``queues[i]``. Returns one code per item, in order: its
        incarnation (the server time it was enqueued at) when enqueued or scheduled, else
        the script's code (0 duplicate, -1 full), or -2 when Redis refused the queue's
        call as out of memory (nothing of that call was written; the other queues' calls
        stand); and one due time per item (ms, server clock; 0 unless scheduled). New
        queues are added to the queue index in the same round trip.
        """
        core = self._core
        size = core.config.queue_size
        now = time.monotonic()
        first = queues[0]
        if core.config.wait_replicas:
            return await self._enqueue_confirmed(queues, items, unconfirmed, now)
        if all(keys is first for keys in queues) and not self._index.is_stale(first.agent_id, now):
            # The common case (one message, or a batch to one queue): one script call.
            try:
                outcome = await core.scripts.call(
                    queue_send.call(first, queue_size=size, items=items)
                )
            except OutOfMemoryError:
                return [_OUT_OF_MEMORY_CODE] * len(items), [0] * len(items)
            codes = [0] * len(items)
            dues = [0] * len(items)
            _spread(codes, dues, range(len(items)), outcome)
            return codes, dues
        by_queue: dict[QueueKeys, list[int]] = {}
        for i, keys in enumerate(queues):
            by_queue.setdefault(keys, []).append(i)
        calls = [
            queue_send.call(keys, queue_size=size, items=[items[i] for i in idx])
            for keys, idx in by_queue.items()
        ]
        stale = self._index.stale((keys.agent_id for keys in by_queue), now)
        codes = [0] * len(items)
        dues = [0] * len(items)
        extra = [self._index.add_command(stale)] if stale else []
        outcomes, extra_results = await core.scripts.run_pipelined(
            calls, extra=extra, keep=(OutOfMemoryError,)
        )
        for idx, outcome in zip(by_queue.values(), outcomes, strict=True):
            if isinstance(outcome, BaseException):
                for i in idx:
                    codes[i] = _OUT_OF_MEMORY_CODE
            else:
                _spread(codes, dues, idx, outcome)
        if stale and not isinstance(extra_results[-1], BaseException):
            self._index.mark_added(stale, now)
        return codes, dues

    async def _enqueue_confirmed(
        self, queues: list[QueueKeys], items: list[SendItem], unconfirmed: set[int], now: float
    ) -> tuple[list[int], list[int]]:
        """:meth:`_enqueue` with ``wait_replicas``: each queue's call, then its ``WAIT``.

        The indexes of the items whose call fewer replicas confirmed go to
        ``unconfirmed`` (``replication.py``).
        """
        core = self._core
        config = core.config
        by_queue: dict[QueueKeys, list[int]] = {}
        for i, keys in enumerate(queues):
            by_queue.setdefault(keys, []).append(i)
        calls = [
            queue_send.call(keys, queue_size=config.queue_size, items=[items[i] for i in idx])
            for keys, idx in by_queue.items()
        ]
        stale = self._index.stale((keys.agent_id for keys in by_queue), now)
        if stale:  # idempotent, and only a discovery aid: not worth a WAIT of its own
            await core.redis.execute_command(*self._index.add_command(stale))
            self._index.mark_added(stale, now)
        confirmed = await run_confirmed(
            core.redis,
            core.scripts,
            calls,
            replicas=config.wait_replicas,
            timeout_ms=max(1, int(config.wait_timeout_s * 1000)),
            keep=(OutOfMemoryError,),
        )
        codes = [0] * len(items)
        dues = [0] * len(items)
        duplicates: list[tuple[QueueKeys, list[int]]] = []
        for (keys, idx), (outcome, acked) in zip(by_queue.items(), confirmed, strict=True):
            if isinstance(outcome, BaseException):
                for i in idx:
                    codes[i] = _OUT_OF_MEMORY_CODE
                continue
            _spread(codes, dues, idx, outcome)
            if acked < config.wait_replicas:
                unconfirmed.update(idx)
            elif any(codes[i] == 0 for i in idx):
                duplicates.append((keys, idx))
        if duplicates:
            # Their first copy's replication is unknown: confirm it with a write of ours.
            marks = await asyncio.gather(
                *(
                    confirm_writes(
                        core.redis,
                        keys.replication_mark,
                        replicas=config.wait_replicas,
                        timeout_ms=max(1, int(config.wait_timeout_s * 1000)),
                    )
                    for keys, _ in duplicates
                )
            )
            for (_, idx), acked in zip(duplicates, marks, strict=True):
                if acked < config.wait_replicas:
                    unconfirmed.update(i for i in idx if codes[i] == 0)
        return codes, dues

    def _result(self, message: AgentMessage, keys: QueueKeys, code: int, due: int) -> MessageResult:
        queue = str(keys.agent_id)
        if code < 0:
            self._core.metrics.inc_delivered_error(queue)
            return assemble_model(
                MessageResult,
                {
                    "message_id": message.message_id,
                    "delivered": False,
                    "error": QUEUE_FULL if code == QUEUE_FULL_CODE else OUT_OF_MEMORY,
                    "recipient": message.recipient,
                    "duplicate": False,
                    "status": SendStatus.REFUSED,
                    "scheduled_for": None,
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
                "status": SendStatus.DUPLICATE if code == 0 else SendStatus.ENQUEUED,
                "scheduled_for": datetime.fromtimestamp(due / 1000, UTC) if due else None,
            },
        )


def _spread(codes: list[int], dues: list[int], idx: Iterable[int], outcome: SendOutcome) -> None:
    """Spread one queue's outcome over ``codes`` and ``dues``.

    An enqueued or scheduled message gets the server time, its incarnation, so every
    code stays -2 out of memory, -1 full, 0 duplicate, > 0 accepted; a scheduled one's
    due time goes to ``dues``.
    """
    now = outcome.server_now_ms
    for i, code, due in zip(idx, outcome.codes, outcome.dues, strict=True):
        code = int(code)
        codes[i] = now if code > 0 else code
        if code == SCHEDULED:
            dues[i] = int(due)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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
