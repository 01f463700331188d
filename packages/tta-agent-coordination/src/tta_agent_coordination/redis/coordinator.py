"""``RedisMessageCoordinator``: per-agent prioritised queues on Redis Streams.

Every state change that touches more than one key is one Lua script (``redis/scripts``),
so two consumers, or a crash between two commands, can never leave a message half-moved.
Lease and due times come from the Redis server clock. See ``docs/architecture.md``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError
from redis.exceptions import NoScriptError, RedisError

from tta_agent_coordination.errors import (
    CircuitBreakerOpenError,
    ConfigurationError,
    CoordinatorUnavailableError,
    MessageValidationError,
    PayloadTooLargeError,
)
from tta_agent_coordination.interfaces import CallGuard, MessageCoordinator
from tta_agent_coordination.models import (
    AgentId,
    AgentMessage,
    DeadLetter,
    FailureType,
    MessagePriority,
    MessageResult,
    MessageSubscription,
    MessageType,
    QueueStats,
    ReceivedMessage,
)
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.observability.metrics import MessageMetrics, NoOpMessageMetrics
from tta_agent_coordination.redis.codec import (
    DecodeError,
    assemble_model,
    decode_dead_letter,
    decode_delivery,
    priority_index,
    stamped_envelope_json,
    text,
    to_ms,
)
from tta_agent_coordination.redis.config import CoordinatorConfig
from tta_agent_coordination.redis.keys import PRIORITIES_HIGH_FIRST, KeySpace, QueueKeys
from tta_agent_coordination.redis.lua import ScriptSet
from tta_agent_coordination.redis.subscriptions import SubscriptionStore, new_subscription
from tta_agent_coordination.resilience.cancellation import CancellationWatch
from tta_agent_coordination.resilience.defaults import default_redis_guard
from tta_agent_coordination.runtime.rpc import (
    REPLY_INBOX_HEADER,
    ReplyRouter,
    build_reply,
    expects_reply,
)
from tta_agent_coordination.store import (
    BatcherStats,
    Durability,
    LifecycleKind,
    MessageEvent,
    MessageStore,
    PendingMessage,
    StoreError,
    StoreMetrics,
    StoreWriter,
)

__all__ = ["QUEUE_FULL", "RedisMessageCoordinator"]

QUEUE_FULL = "queue full"
"""The ``MessageResult.error`` of a send refused because the queue holds ``queue_size``."""

T = TypeVar("T")

_SEND_ERRORS = (RedisError, OSError, asyncio.TimeoutError, CircuitBreakerOpenError)
_MAX_BATCH = 1_000
_MAX_BLOCK_SLICE_S = 5.0
# How long a queue stays "known to be in the index" before a send re-adds it.
_INDEX_REFRESH_S = 30.0
# Messages per restore script call (bounds how long one call blocks Redis).
_RESTORE_CHUNK = 500


class RedisMessageCoordinator(MessageCoordinator):
    """Per-agent prioritised queues with at-least-once delivery, leases, retries and a DLQ.

    Args:
        redis: an asyncio Redis client (``decode_responses`` either way). The coordinator
            does not own it and never closes it.
        key_prefix: prefix of every key (``"ao"`` as in TTA).
        guard: wraps every Redis call. By default a ``RedisGuard`` (circuit breaker named
            ``redis`` and retries of repeatable calls) shared by every component on the
            same client; ``PassthroughGuard()`` turns protection off.
        metrics: receives counters and gauges; discarded by default.
        store: a :class:`MessageStore` that records every lifecycle change (sent,
            leased, acked, retrying, dead, replayed), e.g. ``PostgresMessageStore``.
        durability: ``"async"`` (write-behind batches, the default) or ``"sync"`` (a send
            returns delivered only once the store has recorded it). See
            ``docs/durability.md``.
        store_max_pending: events the write-behind buffer holds before senders wait.
        store_batch_size: most events per store write.
        store_flush_interval_s: how long a partial batch waits for more events.
        reply_ttl_s: how long a requester's reply inbox keeps replies nobody reads.
        **config: any field of :class:`CoordinatorConfig` (``queue_size``,
            ``retry_attempts``, ``backoff_base``, ``backoff_factor``, ``backoff_max``,
            ``backoff_jitter``, ``dedupe_window_s``, ``dlq_max_len``,
            ``max_payload_bytes``, ``orphan_lease_s``, ``maintenance_batch``).

    Raises:
        ConfigurationError: a setting is out of range.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        key_prefix: str = "ao",
        *,
        guard: CallGuard | None = None,
        metrics: MessageMetrics | None = None,
        store: MessageStore | None = None,
        durability: Durability | str = Durability.ASYNC,
        store_max_pending: int = 10_000,
        store_batch_size: int = 500,
        store_flush_interval_s: float = 0.05,
        reply_ttl_s: float = 60.0,
        **config: Any,
    ) -> None:
        self._redis = redis
        self._keys = KeySpace(key_prefix)
        self._config = CoordinatorConfig.build(**config)
        self._guard: CallGuard = guard if guard is not None else default_redis_guard(redis)
        self._metrics: MessageMetrics = metrics if metrics is not None else NoOpMessageMetrics()
        self._scripts = ScriptSet(redis)
        self._subscriptions = SubscriptionStore(redis, self._keys)
        self._unsaved: dict[str, MessageSubscription] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._indexed: dict[AgentId, float] = {}
        self._router: ReplyRouter | None = None
        self._reply_ttl_s = reply_ttl_s
        self._log = get_logger(__name__, prefix=key_prefix)
        self._store = store
        self._writer: StoreWriter[MessageEvent] | None = None
        if store is not None:
            self._writer = StoreWriter(
                store.record,
                durability,
                max_pending=store_max_pending,
                batch_size=store_batch_size,
                flush_interval_s=store_flush_interval_s,
                name="messages",
                metrics=self._metrics if isinstance(self._metrics, StoreMetrics) else None,
            )

    # --- properties ---------------------------------------------------------------------

    @property
    def config(self) -> CoordinatorConfig:
        """The current, validated configuration."""
        return self._config

    @property
    def keys(self) -> KeySpace:
        """The key space (prefix) this coordinator works in."""
        return self._keys

    @property
    def store(self) -> MessageStore | None:
        """The message store that records every lifecycle change, if any."""
        return self._store

    @property
    def store_stats(self) -> BatcherStats | None:
        """Counters of the store's write-behind buffer (pending, backpressure waits, ...)."""
        return self._writer.stats if self._writer is not None else None

    async def flush_store(self) -> None:
        """Wait until every lifecycle event so far is written to the store."""
        if self._writer is not None:
            await self._writer.flush()

    async def configure(
        self,
        *,
        queue_size: int | None = None,
        retry_attempts: int | None = None,
        backoff_base: float | None = None,
        backoff_factor: float | None = None,
        backoff_max: float | None = None,
        **more: Any,
    ) -> None:
        """Change limits and backoff; unchanged when any value is invalid.

        Raises:
            ConfigurationError: a value is out of range (a negative backoff, a zero queue
                size, an unknown setting).
        """
        self._config = self._config.updated(
            queue_size=queue_size,
            retry_attempts=retry_attempts,
            backoff_base=backoff_base,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            **more,
        )

    # --- sending ------------------------------------------------------------------------

    async def send_message(
        self, sender: AgentId, recipient: AgentId, message: AgentMessage
    ) -> MessageResult:
        """Enqueue ``message`` for ``recipient``.

        The caller's message is not changed; the stored copy gets a ``timestamp`` if it
        has none. A second send of the same ``message_id`` to the same queue, while the
        first is unsettled or within ``dedupe_window_s`` after it settled, is not
        enqueued again and reports ``duplicate=True``. A full queue, or an unreachable
        Redis, gives ``delivered=False`` with the reason in ``error``.

        Raises:
            MessageValidationError: ``message.sender``/``message.recipient`` differ from
                the arguments, or the payload is not JSON-serialisable.
            PayloadTooLargeError: the envelope exceeds ``max_payload_bytes``.
        """
        _check_address(sender, recipient, message)
        return (await self.send_many([message]))[0]

    async def broadcast_message(
        self, sender: AgentId, message: AgentMessage, recipients: list[AgentId]
    ) -> list[MessageResult]:
        """Send a copy of ``message`` to each recipient in one round trip.

        Each copy keeps the ``message_id`` (dedupe is per queue) with its own recipient.

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
        results = dict(zip(distinct, await self.send_many(copies), strict=True))
        return [results[r] for r in recipients]

    async def send_many(self, messages: Sequence[AgentMessage]) -> list[MessageResult]:
        """Enqueue many messages (each to its own ``recipient``) in one round trip.

        Returns one result per message, in order. Invalid messages raise before anything
        is sent, as in :meth:`send_message`.
        """
        prepared = [self._prepare(m) for m in messages]
        if not prepared:
            return []
        watch = CancellationWatch()
        try:
            replies = await self._guard.run(
                "send", lambda: self._run_pipelined(prepared), retry=True
            )
        except _SEND_ERRORS as exc:
            watch.reraise(exc)
            reason = (
                f"redis unavailable: {exc}"
                if not isinstance(exc, CircuitBreakerOpenError)
                else str(exc)
            )
            self._log.warning("send_failed", error=reason, count=len(prepared))
            for keys, *_ in prepared:
                self._metrics.inc_delivered_error(str(keys.agent_id))
            return [
                MessageResult(
                    message_id=m.message_id, delivered=False, error=reason, recipient=m.recipient
                )
                for m in messages
            ]
        results = [
            self._result(m, keys, reply)
            for m, (keys, _), reply in zip(messages, prepared, replies, strict=True)
        ]
        if self._writer is not None:
            results = await self._record_sent(messages, prepared, replies, results)
        return results

    async def _record_sent(
        self,
        messages: Sequence[AgentMessage],
        prepared: list[tuple[QueueKeys, list[Any]]],
        replies: list[Any],
        results: list[MessageResult],
    ) -> list[MessageResult]:
        """Hand the accepted sends to the store; in sync mode, before reporting them.

        A duplicate is recorded too (incarnation 0: it only creates a missing record), so
        that a send repeated after a failed sync write makes the record.
        """
        assert self._writer is not None
        events = [
            MessageEvent(
                kind=LifecycleKind.SENT,
                message_id=m.message_id,
                recipient=m.recipient,
                incarnation=max(0, int(reply)),
                attempts=0,
                envelope=args[2],
                error=None,
                failure=None,
            )
            for m, (_, args), reply in zip(messages, prepared, replies, strict=True)
            if int(reply) >= 0
        ]
        try:
            await self._writer.record(events, essential=True)
        except StoreError as exc:
            # The messages are in Redis and will be delivered, but not durable: report
            # them undelivered so that the caller sends again (dedupe makes it safe).
            reason = f"store unavailable: {exc}"
            self._log.warning("store_write_failed", error=reason, count=len(events))
            return [
                r.model_copy(update={"delivered": False, "error": reason}) if r.delivered else r
                for r in results
            ]
        return results

    def _prepare(self, message: AgentMessage) -> tuple[QueueKeys, list[Any]]:
        try:
            envelope = stamped_envelope_json(message)
        except PydanticSerializationError as exc:
            raise MessageValidationError(
                f"message {message.message_id!r} cannot be serialised to JSON: {exc}"
            ) from None
        size = len(envelope.encode("utf-8"))
        if size > self._config.max_payload_bytes:
            raise PayloadTooLargeError(message.message_id, size, self._config.max_payload_bytes)
        if self._store is not None:
            self._store.check_envelope(message.message_id, envelope)
        expires = to_ms(message.expires_at) if message.expires_at is not None else 0
        args: list[Any] = [priority_index(message.priority), message.message_id, envelope, expires]
        return self._keys.queue(message.recipient), args

    async def _run_pipelined(self, prepared: list[tuple[QueueKeys, list[Any]]]) -> list[Any]:
        """Enqueue with one script call per queue, all in one round trip.

        Returns one reply code per prepared message, in order. New queues are added to
        the queue index in the same round trip.
        """
        script = self._scripts["queue_send"]
        by_queue: dict[QueueKeys, list[int]] = {}
        for i, (keys, _) in enumerate(prepared):
            by_queue.setdefault(keys, []).append(i)
        calls = [
            (keys, [self._config.queue_size, *(a for i in idx for a in prepared[i][1])], idx)
            for keys, idx in by_queue.items()
        ]
        now = time.monotonic()
        stale: set[AgentId] = {
            keys.agent_id
            for keys in by_queue
            if now - self._indexed.get(keys.agent_id, -_INDEX_REFRESH_S) >= _INDEX_REFRESH_S
        }
        replies: list[Any] = [None] * len(prepared)
        if len(calls) == 1 and not stale:
            keys, args, idx = calls[0]
            _fill_replies(replies, idx, await script(keys=list(keys.all_keys), args=args))
            return replies
        pending = calls
        for _ in range(2):  # a second pass only after NOSCRIPT (Redis restarted, cache flushed)
            async with self._redis.pipeline(transaction=False) as pipe:
                for keys, args, _ in pending:
                    pipe.evalsha(script.sha, len(keys.all_keys), *keys.all_keys, *args)
                if stale:
                    pipe.sadd(self._keys.queue_index, *(str(a) for a in stale))
                results = await pipe.execute(raise_on_error=False)
            missing: list[tuple[QueueKeys, list[Any], list[int]]] = []
            for call, result in zip(pending, results, strict=False):
                if isinstance(result, NoScriptError):
                    missing.append(call)
                elif isinstance(result, BaseException):
                    raise result
                else:
                    _fill_replies(replies, call[2], result)
            if stale and not isinstance(results[-1], BaseException):
                self._indexed.update(dict.fromkeys(stale, now))
                stale = set()
            if not missing:
                return replies
            await self._redis.script_load(script.script)
            pending = missing
        raise CoordinatorUnavailableError("Redis refused to load the send script")

    def _result(self, message: AgentMessage, keys: QueueKeys, reply: Any) -> MessageResult:
        queue = str(keys.agent_id)
        code = int(reply)
        if code == -1:
            self._metrics.inc_delivered_error(queue)
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
        self._metrics.inc_delivered_ok(queue)
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

    # --- subscriptions and events -------------------------------------------------------

    def subscribe_to_messages(
        self, agent_id: AgentId, message_types: list[MessageType]
    ) -> MessageSubscription:
        """Subscribe ``agent_id`` to ``message_types`` (TTA's synchronous signature).

        The subscription is written to Redis in the background when an event loop runs,
        and in any case before the next :meth:`publish_event` of this coordinator; a
        write that fails is retried then. Use :meth:`subscribe` to await the write.
        """
        subscription = new_subscription(agent_id, message_types)
        self._unsaved[subscription.subscription_id] = subscription
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return subscription
        task = loop.create_task(self._save_subscriptions())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return subscription

    async def subscribe(
        self, agent_id: AgentId, message_types: list[MessageType]
    ) -> MessageSubscription:
        """Subscribe ``agent_id`` to ``message_types``; stored in Redis when this returns."""
        subscription = new_subscription(agent_id, message_types)
        await self._guard.run(
            "subscribe", lambda: self._subscriptions.save(subscription), retry=True
        )
        return subscription

    async def unsubscribe(self, subscription_id: str) -> bool:
        """Remove a subscription; False when it does not exist."""
        self._unsaved.pop(subscription_id, None)
        return await self._call("unsubscribe", lambda: self._subscriptions.remove(subscription_id))

    async def subscribers(self, message_type: MessageType) -> list[AgentId]:
        """The agents subscribed to ``message_type``."""
        message_type = MessageType(message_type)
        await self._save_subscriptions(raise_errors=True)
        return await self._call(
            "subscribers", lambda: self._subscriptions.subscribers(message_type), retry=True
        )

    async def publish_event(self, sender: AgentId, message: AgentMessage) -> list[MessageResult]:
        """Deliver ``message`` to every agent subscribed to its ``message_type``.

        ``message.recipient`` is replaced in each copy. Returns one result per subscriber
        (none when nobody is subscribed).
        """
        subscribers = await self.subscribers(message.message_type)
        if not subscribers:
            return []
        return await self.broadcast_message(sender, message, subscribers)

    async def _save_subscriptions(self, *, raise_errors: bool = False) -> None:
        for sid, subscription in list(self._unsaved.items()):
            try:
                await self._guard.run(
                    "subscribe", lambda s=subscription: self._subscriptions.save(s), retry=True
                )
            except _SEND_ERRORS as exc:
                if raise_errors:
                    raise CoordinatorUnavailableError(
                        f"could not store subscription {sid}: {exc}"
                    ) from exc
                self._log.warning("subscription_not_saved", subscription_id=sid, error=str(exc))
                return
            self._unsaved.pop(sid, None)

    # --- request / reply ----------------------------------------------------------------

    def _replies(self) -> ReplyRouter:
        if self._router is None:
            self._router = ReplyRouter(
                self._redis,
                self._keys,
                self._scripts,
                lambda operation, fn: self._call(operation, fn),
                self.send_message,
                reply_ttl_s=self._reply_ttl_s,
            )
        return self._router

    async def request(
        self,
        sender: AgentId,
        recipient: AgentId,
        payload_or_message: AgentMessage | Mapping[str, Any] | BaseModel,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - a request's deadline is its API
        priority: MessagePriority = MessagePriority.NORMAL,
        headers: Mapping[str, str] | None = None,
        expire: bool = True,
    ) -> AgentMessage:
        """Send a request to ``recipient`` and wait for its reply.

        ``payload_or_message`` is a payload (a dict or pydantic model) or a complete
        ``AgentMessage`` from ``sender`` to ``recipient``. The request carries a
        ``correlation_id`` (its message id unless set) and ``reply_to`` (``sender``
        unless set); the recipient's worker turns its handler's return value into the
        reply. With ``expire`` (the default), a request still queued when the timeout
        passes is dead-lettered instead of handled for nobody.

        Returns:
            The ``RESPONSE`` message; its ``payload`` is the handler's result.

        Raises:
            RequestTimeoutError: no reply within ``timeout`` seconds.
            RemoteHandlerError: the handler failed for good (a ``PermanentError``, an
                invalid payload, or retries ran out).
            RequestNotDeliveredError: the request could not be enqueued.
        """
        return await self._replies().request(
            sender,
            recipient,
            payload_or_message,
            timeout=timeout,
            priority=priority,
            headers=headers,
            expire=expire,
        )

    async def reply(
        self,
        sender: AgentId,
        request: AgentMessage,
        result: Any = None,
        *,
        error: BaseException | None = None,
        failure: FailureType = FailureType.PERMANENT,
    ) -> bool:
        """Answer ``request`` with ``result`` (or with ``error``); workers do it for you.

        The reply goes to the requester's inbox when it waits in :meth:`request`, else
        as a ``RESPONSE`` message to the request's ``reply_to``. Returns False when the
        request expects no reply, or the reply could not be enqueued (logged).

        Raises:
            CoordinatorUnavailableError: Redis failed while delivering to an inbox.
        """
        if not expects_reply(request):
            return False
        response = build_reply(request, sender, result, error=error, failure=failure)
        if REPLY_INBOX_HEADER in request.headers:
            await self._replies().deliver(request, response)
            return True
        outcome = await self.send_message(sender, response.recipient, response)
        if not outcome.delivered:
            self._log.warning(
                "reply_not_delivered",
                request=request.message_id,
                recipient=str(response.recipient),
                error=outcome.error,
            )
        return outcome.delivered

    async def aclose(self) -> None:
        """Finish background subscription writes (the Redis client stays open)."""
        if self._router is not None:
            await self._router.aclose()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_store()

    # --- receiving ----------------------------------------------------------------------

    async def receive(
        self, agent_id: AgentId, visibility_timeout: float = 5, block: float | None = None
    ) -> ReceivedMessage | None:
        """Reserve the next message: highest priority first, FIFO within a priority.

        The message stays invisible to other consumers for ``visibility_timeout``
        seconds; settle it with :meth:`ack` or :meth:`nack`, or extend it with
        :meth:`extend_lease`. With ``block`` seconds, waits for a message instead of
        returning None at once (no polling: the wait is a blocking stream read).

        Raises:
            CircuitBreakerOpenError: the Redis circuit breaker is open.
            CoordinatorUnavailableError: Redis failed.
        """
        batch = await self.receive_batch(
            agent_id, 1, visibility_timeout=visibility_timeout, block=block
        )
        return batch[0] if batch else None

    async def receive_batch(
        self,
        agent_id: AgentId,
        count: int,
        *,
        visibility_timeout: float = 5,
        block: float | None = None,
    ) -> list[ReceivedMessage]:
        """Reserve up to ``count`` messages in one round trip, in delivery order.

        Also returns expired leases of this queue to it and promotes due retries first,
        so a queue with consumers heals itself. See :meth:`receive`.
        """
        if not 1 <= count <= _MAX_BATCH:
            raise ConfigurationError(f"count must be between 1 and {_MAX_BATCH}, got {count}")
        if visibility_timeout <= 0:
            raise ConfigurationError(
                f"visibility_timeout must be > 0 seconds, got {visibility_timeout}"
            )
        if block is not None and block < 0:
            raise ConfigurationError(f"block must be >= 0 seconds or None, got {block}")
        keys = self._keys.queue(agent_id)
        cfg = self._config
        args = [
            count,
            max(1, int(visibility_timeout * 1000)),
            cfg.retry_attempts,
            cfg.dlq_max_len,
            int(cfg.dedupe_window_s * 1000),
            cfg.maintenance_batch,
        ]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block if block else None
        while True:
            reply = await self._call(
                "receive", lambda: self._scripts.run("queue_receive", list(keys.all_keys), args)
            )
            deliveries, server_now, last_ids, wake_at, recovered, expired, moved = reply
            queue = str(agent_id)
            if moved and self._writer is not None:
                await self._writer.record(_moved_events(agent_id, moved))
            if int(recovered):
                self._metrics.inc_recovered(queue, int(recovered))
            if int(expired):
                self._metrics.inc_permanent(queue, int(expired))
            if deliveries:
                return await self._decode_deliveries(agent_id, deliveries)
            if deadline is None:
                return []
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            wait = min(remaining, _MAX_BLOCK_SLICE_S)
            if int(wake_at) >= 0:
                wait = min(wait, max(0.001, (int(wake_at) - int(server_now)) / 1000))
            await self._wait_for_entries(keys, [text(i) for i in last_ids], wait)

    async def _wait_for_entries(self, keys: QueueKeys, last_ids: list[str], seconds: float) -> None:
        """Block until an entry newer than ``last_ids`` arrives, or ``seconds`` pass.

        A plain XREAD changes nothing; it only wakes the caller, which then reserves
        through the receive script (another consumer may win the race; it loops).
        """
        streams = dict(zip(keys.ready, last_ids, strict=True))
        await self._call(
            "receive",
            lambda: self._redis.xread(
                cast(Any, streams), count=1, block=max(1, int(seconds * 1000))
            ),
        )

    async def _decode_deliveries(self, agent_id: AgentId, raw: list[Any]) -> list[ReceivedMessage]:
        received: list[ReceivedMessage] = []
        leased: list[MessageEvent] = []
        for item in raw:
            try:
                delivery = decode_delivery(item)
            except DecodeError as exc:
                # Not ours to interpret: keep it, but out of the way, with the reason.
                self._log.error(
                    "undecodable_message", queue=str(agent_id), token=exc.token, error=str(exc)
                )
                await self.nack(agent_id, exc.token, FailureType.PERMANENT, str(exc))
                continue
            received.append(delivery)
            if self._writer is not None:
                leased.append(
                    MessageEvent(
                        kind=LifecycleKind.LEASED,
                        message_id=delivery.message.message_id,
                        recipient=agent_id,
                        incarnation=int(item[4]),
                        attempts=delivery.attempts,
                        envelope=None,
                        error=None,
                        failure=None,
                    )
                )
        if self._writer is not None:
            await self._writer.record(leased)
        self._metrics.inc_received(str(agent_id), len(received))
        return received

    # --- settling -----------------------------------------------------------------------

    async def ack(self, agent_id: AgentId, token: str) -> bool:
        """Settle a delivery as done; it leaves no trace but its dedupe entry.

        Returns False, changing nothing, for an unknown token or one already settled
        (or recovered after its lease expired).
        """
        return (await self.ack_many(agent_id, [token]))[0]

    async def ack_many(self, agent_id: AgentId, tokens: Sequence[str]) -> list[bool]:
        """Ack many deliveries of one queue in one round trip; one flag per token."""
        if not tokens:
            return []
        keys = self._keys.queue(agent_id)
        args = [int(self._config.dedupe_window_s * 1000), *tokens]
        flags, acked = await self._call(
            "ack", lambda: self._scripts.run("queue_ack", list(keys.all_keys), args)
        )
        done = [bool(int(f)) for f in flags]
        if acked and self._writer is not None:
            await self._writer.record(
                [
                    MessageEvent(
                        kind=LifecycleKind.ACKED,
                        message_id=text(msgid),
                        recipient=agent_id,
                        incarnation=int(first),
                        attempts=int(deliveries),
                        envelope=None,
                        error=None,
                        failure=None,
                    )
                    for msgid, first, deliveries in acked
                ]
            )
        self._metrics.inc_acked(str(agent_id), sum(done))
        return done

    async def nack(
        self,
        agent_id: AgentId,
        token: str,
        failure: FailureType = FailureType.TRANSIENT,
        error: str | None = None,
    ) -> bool:
        """Settle a delivery as failed.

        A TRANSIENT (or TIMEOUT) failure is redelivered after
        ``backoff_base * backoff_factor ** (attempts - 1)`` seconds (capped at
        ``backoff_max``, plus up to ``backoff_jitter`` of it), never sooner; after
        ``retry_attempts`` retries, or on a PERMANENT failure, the message goes to the
        dead-letter queue with ``error``. Returns False, changing nothing, for an unknown
        or already settled token.
        """
        failure = FailureType(failure)
        keys = self._keys.queue(agent_id)
        cfg = self._config
        args = [
            token,
            failure.value,
            error or "",
            cfg.retry_attempts,
            cfg.backoff_base * 1000,
            cfg.backoff_factor,
            cfg.backoff_max * 1000,
            1.0 + cfg.backoff_jitter * random.random(),
            cfg.dlq_max_len,
            int(cfg.dedupe_window_s * 1000),
        ]
        reply = await self._call(
            "nack", lambda: self._scripts.run("queue_nack", list(keys.all_keys), args)
        )
        code = int(reply[0])
        if code and self._writer is not None:
            await self._writer.record(
                [
                    MessageEvent(
                        kind=LifecycleKind.RETRYING if code == 1 else LifecycleKind.DEAD,
                        message_id=text(reply[1]),
                        recipient=agent_id,
                        incarnation=int(reply[2]),
                        attempts=int(reply[3]),
                        error=error,
                        failure=failure,
                    )
                ]
            )
        queue = str(agent_id)
        if code:
            self._metrics.inc_nacks(queue)
        if code == 1:
            self._metrics.inc_retries_scheduled(queue)
        elif code == 2:
            self._metrics.inc_permanent(queue)
            self._log.info(
                "dead_lettered", queue=queue, token=token, failure=failure.value, error=error
            )
        return code != 0

    async def extend_lease(self, agent_id: AgentId, token: str, seconds: float) -> bool:
        """Push a lease's deadline to ``seconds`` from now; False if the token is not leased."""
        if seconds <= 0:
            raise ConfigurationError(f"seconds must be > 0, got {seconds}")
        keys = self._keys.queue(agent_id)
        deadline = await self._call(
            "extend_lease",
            lambda: self._scripts.run(
                "queue_extend", list(keys.all_keys), [token, int(seconds * 1000)]
            ),
            retry=True,
        )
        return int(deadline) > 0

    # --- recovery -----------------------------------------------------------------------

    async def recover_pending(self, agent_id: AgentId | None = None) -> int:
        """Return expired leases and due retries to the ready streams.

        A lease that expired counts as a delivery: on the last allowed attempt the message
        is dead-lettered instead (reason ``lease expired``). With ``agent_id=None`` every
        queue under the prefix is recovered, whatever its agent type. A queue found
        entirely empty (nothing ready, leased, delayed or dead) has its keys deleted and
        leaves the queue index, so agents that come and go leave nothing behind. Returns
        how many messages were moved (requeued, dead-lettered or promoted).
        """
        if agent_id is not None:
            return await self._recover_queue(agent_id, force=False)
        total = 0
        for queue in await self.known_queues():
            total += await self._recover_queue(queue, force=False)
        return total

    async def release_leases(self, agent_id: AgentId) -> int:
        """Return every leased message of ``agent_id``'s queue at once (its consumer died).

        Each release counts as a delivery, as an expired lease does. Returns how many
        messages were moved.
        """
        return await self._recover_queue(agent_id, force=True)

    async def known_queues(self) -> list[AgentId]:
        """Every queue sent to under this prefix (from the queue index), sorted."""
        members = await self._call(
            "known_queues", lambda: self._redis.smembers(self._keys.queue_index), retry=True
        )
        queues: set[AgentId] = set()
        for member in members:
            try:
                queues.add(AgentId.parse(text(member)))
            except ValueError:
                continue
        return sorted(queues, key=str)

    async def _forget_queue(self, agent_id: AgentId) -> None:
        """Drop an emptied queue from the index (its keys are already gone).

        A send racing with this is re-indexed by its sender within ``_INDEX_REFRESH_S``;
        until then only ``recover_pending(None)`` misses it, and receives on the queue
        still heal it.
        """
        self._indexed.pop(agent_id, None)
        await self._call(
            "recover",
            lambda: self._redis.srem(self._keys.queue_index, str(agent_id)),
            retry=True,
        )

    async def _recover_queue(self, agent_id: AgentId, *, force: bool) -> int:
        keys = self._keys.queue(agent_id)
        cfg = self._config
        args = [
            cfg.retry_attempts,
            cfg.dlq_max_len,
            int(cfg.dedupe_window_s * 1000),
            0 if force else int(cfg.orphan_lease_s * 1000),
            cfg.maintenance_batch,
            1 if force else 0,
        ]
        total = 0
        dead_total = 0
        while True:
            requeued, dead, promoted, more, removed, moved = await self._call(
                "recover",
                lambda: self._scripts.run("queue_recover", list(keys.all_keys), args),
                retry=True,
            )
            if moved and self._writer is not None:
                await self._writer.record(_moved_events(agent_id, moved))
            total += int(requeued) + int(dead) + int(promoted)
            dead_total += int(dead)
            if not int(more):
                break
        if int(removed):
            await self._forget_queue(agent_id)
        if total:
            queue = str(agent_id)
            self._metrics.inc_recovered(queue, total - dead_total)
            if dead_total:
                self._metrics.inc_permanent(queue, dead_total)
            self._log.info(
                "recovered", queue=queue, moved=total, dead_lettered=dead_total, forced=force
            )
        return total

    # --- inspection and dead letters ---------------------------------------------------

    async def queue_stats(self, agent_id: AgentId) -> QueueStats:
        """Ready (per priority), leased, delayed and dead counts of one queue, atomically."""
        keys = self._keys.queue(agent_id)
        raw = await self._call(
            "queue_stats",
            lambda: self._scripts.run("queue_stats", list(keys.all_keys), []),
            retry=True,
        )
        counts = [int(v) for v in raw]
        stats = QueueStats(
            agent_id=agent_id,
            ready=dict(zip(PRIORITIES_HIGH_FIRST, counts[:3], strict=True)),
            leased=counts[3],
            delayed=counts[4],
            dead=counts[5],
        )
        self._metrics.set_queue_depth(str(agent_id), stats.unsettled)
        self._metrics.set_dead_letters(str(agent_id), stats.dead)
        return stats

    async def dead_letters(self, agent_id: AgentId, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters of ``agent_id``'s queue."""
        if limit <= 0:
            raise ConfigurationError(f"limit must be > 0, got {limit}")
        dlq = self._keys.queue(agent_id).dlq
        entries = await self._call(
            "dead_letters", lambda: self._redis.xrange(dlq, count=limit), retry=True
        )
        letters = (decode_dead_letter(entry_id, fields or {}) for entry_id, fields in entries or [])
        return [letter for letter in letters if letter is not None]

    async def replay_dead_letters(
        self, agent_id: AgentId, message_ids: Iterable[str] | None = None
    ) -> int:
        """Move dead letters back to the ready queue with fresh attempts (all, or these ids).

        A replayed message keeps its priority and last error, loses its expiry, and is not
        subject to ``queue_size``. A dead letter whose message id is live in the queue
        again is left where it is. Returns how many were replayed.
        """
        keys = self._keys.queue(agent_id)
        selected = None if message_ids is None else list(dict.fromkeys(message_ids))
        if selected == []:
            return 0
        cursor = "-"
        replayed = 0
        while True:
            args: list[Any] = [cursor, 500, "0" if selected is None else "1", *(selected or [])]
            count, next_cursor, ids, now = await self._call(
                "replay_dead_letters",
                lambda a=args: self._scripts.run("queue_dlq_replay", list(keys.all_keys), a),
            )
            if ids and self._writer is not None:
                await self._writer.record(
                    [
                        MessageEvent(
                            kind=LifecycleKind.REPLAYED,
                            message_id=text(msgid),
                            recipient=agent_id,
                            incarnation=int(now),
                        )
                        for msgid in ids
                    ]
                )
            replayed += int(count)
            cursor = text(next_cursor)
            if not cursor:
                break
        if replayed:
            self._log.info("dead_letters_replayed", queue=str(agent_id), count=replayed)
        return replayed

    async def restore_messages(self, messages: Sequence[PendingMessage]) -> list[bool]:
        """Enqueue messages again from a store after a Redis loss; one flag per message.

        Each message keeps its attempts, last error, priority, expiry and first enqueue
        time. A message whose id is unsettled in its queue, or settled within the dedupe
        window, is skipped (False), so restoring twice, or into a Redis that still holds
        some of the messages, enqueues each once. Not subject to ``queue_size``. Used by
        ``MessageStore.restore``; the store records the restores itself.
        """
        flags = [False] * len(messages)
        by_queue: dict[AgentId, list[int]] = {}
        for i, m in enumerate(messages):
            by_queue.setdefault(m.recipient, []).append(i)
        for agent_id, idx in by_queue.items():
            keys = self._keys.queue(agent_id)
            for start in range(0, len(idx), _RESTORE_CHUNK):
                chunk = idx[start : start + _RESTORE_CHUNK]
                args: list[Any] = []
                for i in chunk:
                    m = messages[i]
                    args += [
                        priority_index(m.priority),
                        m.message_id,
                        m.envelope,
                        m.attempts,
                        m.last_error or "",
                        m.expires_at_ms,
                        m.incarnation,
                    ]
                reply = await self._call(
                    "restore",
                    lambda a=args, k=keys: self._scripts.run("queue_restore", list(k.all_keys), a),
                )
                for i, flag in zip(chunk, reply, strict=True):
                    flags[i] = bool(int(flag))
            await self._call(
                "restore",
                lambda a=agent_id: self._redis.sadd(self._keys.queue_index, str(a)),
                retry=True,
            )
            self._indexed.pop(agent_id, None)
        return flags

    async def _close_store(self) -> None:
        """Write every pending lifecycle event to the store (part of :meth:`aclose`)."""
        if self._writer is not None:
            await self._writer.aclose()

    async def purge_dead_letters(self, agent_id: AgentId) -> int:
        """Delete every dead letter of ``agent_id``'s queue; how many there were."""
        dlq = self._keys.queue(agent_id).dlq
        return int(
            await self._call(
                "purge_dead_letters", lambda: self._scripts.run("queue_dlq_purge", [dlq], [])
            )
        )

    # --- plumbing -----------------------------------------------------------------------

    async def _call(
        self, operation: str, fn: Callable[[], Awaitable[T]], *, retry: bool = False
    ) -> T:
        """Run a Redis call under the guard; Redis failures become typed errors."""
        watch = CancellationWatch()
        try:
            result = await self._guard.run(operation, fn, retry=retry)
        except (TimeoutError, RedisError, OSError) as exc:
            watch.reraise(exc)
            raise CoordinatorUnavailableError(f"{operation} failed: Redis error: {exc}") from exc
        watch.reraise()
        return result


def _fill_replies(replies: list[Any], idx: list[int], result: list[Any]) -> None:
    """Spread one send script's reply over ``replies``.

    The script returns one code per message, then the server time; an enqueued message
    (code 1) gets that time, its incarnation, so every code stays -1 full, 0 duplicate,
    > 0 enqueued.
    """
    now = int(result[-1])
    for i, code in zip(idx, result[:-1], strict=True):
        replies[i] = now if int(code) == 1 else int(code)


def _moved_events(agent_id: AgentId, moved: list[Any]) -> list[MessageEvent]:
    """Events for the messages a script requeued (1) or dead-lettered (2) on the way."""
    return [
        MessageEvent(
            kind=LifecycleKind.RETRYING if int(outcome) == 1 else LifecycleKind.DEAD,
            message_id=text(msgid),
            recipient=agent_id,
            incarnation=int(first),
            attempts=int(deliveries),
            envelope=None,
            error=text(reason),
            failure=FailureType.TIMEOUT,
        )
        for msgid, first, deliveries, outcome, reason in moved
    ]


def _check_address(sender: AgentId, recipient: AgentId, message: AgentMessage) -> None:
    if message.recipient != recipient:
        raise MessageValidationError(
            f"message {message.message_id!r} is addressed to {message.recipient}, "
            f"but was sent to {recipient}"
        )
    if message.sender != sender:
        raise MessageValidationError(
            f"message {message.message_id!r} has sender {message.sender}, but was sent by {sender}"
        )
