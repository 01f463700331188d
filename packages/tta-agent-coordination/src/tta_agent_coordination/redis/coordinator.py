"""``RedisMessageCoordinator``: per-agent prioritised queues on Redis Streams.

A façade over parts with one job each, sharing one ``CoordinatorCore`` (``core.py``):
``sending.py``, ``receiving.py``, ``settling.py`` (ack, nack, extend), ``recovery.py``
and ``queue_index.py``, ``dead_letters.py`` (and queue statistics), ``subscriptions.py``,
``reply_router.py`` (request/reply) and ``lifecycle.py`` (the message store). Every
state change that touches more than one key is one Lua script (``redis/scripts``, each
with its typed call beside it), so two consumers, or a crash between two commands, can
never leave a message half-moved. Lease and due times come from the Redis server clock.
See ``docs/architecture.md``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from tta_agent_coordination.clients import RedisClient
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
    UndecodableDeadLetter,
)
from tta_agent_coordination.observability.metrics import (
    MessageMetrics,
    NoOpMessageMetrics,
    timing_of,
)
from tta_agent_coordination.observability.tracing import Tracing
from tta_agent_coordination.redis.config import CoordinatorConfig
from tta_agent_coordination.redis.core import CoordinatorCore
from tta_agent_coordination.redis.dead_letters import DeadLetterAdmin
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.lifecycle import lifecycle_recorder
from tta_agent_coordination.redis.queue_index import QueueIndex
from tta_agent_coordination.redis.receiving import Receiver
from tta_agent_coordination.redis.recovery import Recovery
from tta_agent_coordination.redis.reply_router import PendingReply, Replier, timed_request
from tta_agent_coordination.redis.scheduling import Scheduler
from tta_agent_coordination.redis.sending import QUEUE_FULL, Sender, check_address
from tta_agent_coordination.redis.settling import Settler
from tta_agent_coordination.redis.store_marker import StoreMarker
from tta_agent_coordination.redis.stream_waiter import StreamWaiter
from tta_agent_coordination.redis.subscriptions import Subscriptions
from tta_agent_coordination.replies import ReplyAddress
from tta_agent_coordination.resilience.defaults import default_redis_guard
from tta_agent_coordination.store import BatcherStats, Durability, MessageStore, PendingMessage

__all__ = ["QUEUE_FULL", "RedisMessageCoordinator"]


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
        close_store: close ``store`` in :meth:`aclose` (a store built for it alone).
        tracer_provider: an OpenTelemetry ``TracerProvider`` for the send, request and
            reply spans (the trace context travels in each message's ``headers``); None
            uses the global one. A no-op without ``opentelemetry-api`` (the ``otel``
            extra); see docs/observability.md, "Tracing".
        **config: any field of :class:`CoordinatorConfig` (``queue_size``,
            ``retry_attempts``, ``backoff_base``, ``backoff_factor``, ``backoff_max``,
            ``backoff_jitter``, ``dedupe_window_s``, ``dlq_max_len``,
            ``max_payload_bytes``, ``orphan_lease_s``, ``maintenance_batch``).

    Raises:
        ConfigurationError: a setting is out of range.
    """

    def __init__(
        self,
        redis: RedisClient,
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
        close_store: bool = False,
        tracer_provider: Any | None = None,
        **config: Any,
    ) -> None:
        keys = KeySpace(key_prefix)
        settings = CoordinatorConfig.build(**config)
        metrics = metrics if metrics is not None else NoOpMessageMetrics()
        lifecycle = lifecycle_recorder(
            store,
            durability,
            max_pending=store_max_pending,
            batch_size=store_batch_size,
            flush_interval_s=store_flush_interval_s,
            metrics=metrics,
        )
        guard = guard if guard is not None else default_redis_guard(redis)
        core = CoordinatorCore(
            redis,
            keys,
            settings,
            guard=guard,
            metrics=metrics,
            lifecycle=lifecycle,
            tracing=Tracing(tracer_provider),
        )
        self._core = core
        self._timing = timing_of(metrics)
        self._store = store
        self._close_store = close_store
        self.store_marker = StoreMarker(redis, keys, store, core.log)
        """Marks the prefix as recorded, or warns without a store (``store_marker.py``)."""
        index = QueueIndex(core)
        self._sender = Sender(core, index, self.store_marker)
        self._settler = Settler(core)
        self._receiver = Receiver(core)
        self._recovery = Recovery(core, index)
        self._dead_letters = DeadLetterAdmin(core)
        self._subscriptions = Subscriptions(core)
        self._scheduler = Scheduler(core)
        self._replier = Replier(core, self.send_message, reply_ttl_s)

    # --- properties ---------------------------------------------------------------------

    @property
    def config(self) -> CoordinatorConfig:
        """The current, validated configuration."""
        return self._core.config

    @property
    def keys(self) -> KeySpace:
        """The key space (prefix) this coordinator works in."""
        return self._core.keys

    @property
    def redis(self) -> RedisClient:
        """The Redis client this coordinator works on (not owned by it: never closed here).

        For modules that keep state of their own beside the queues, under the same key
        prefix (plan runs, conversations): they share the client, its pool and its breaker.
        """
        return self._core.redis

    @property
    def stream_waiter(self) -> StreamWaiter:
        """The one waiter every blocking receive waits through (see ``docs/worker.md``).

        Other modules may wait on their own streams with it too:
        ``await coordinator.stream_waiter.wait({stream: last_id}, timeout)``.
        """
        return self._core.waiter

    @property
    def store(self) -> MessageStore | None:
        """The message store that records every lifecycle change, if any."""
        return self._store

    @property
    def metrics(self) -> MessageMetrics:
        """The metrics object this coordinator reports to (``metrics=``; a no-op by default)."""
        return self._core.metrics

    @property
    def store_stats(self) -> BatcherStats | None:
        """Counters of the store's write-behind buffer (pending, backpressure waits, ...)."""
        return self._core.lifecycle.stats

    async def flush_store(self) -> None:
        """Wait until every lifecycle event so far is written to the store."""
        await self._core.lifecycle.flush()

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
        self._core.config = self._core.config.updated(
            queue_size=queue_size,
            retry_attempts=retry_attempts,
            backoff_base=backoff_base,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            **more,
        )

    # --- sending ------------------------------------------------------------------------

    async def send_message(
        self,
        sender: AgentId,
        recipient: AgentId,
        message: AgentMessage,
        *,
        delay_s: float | None = None,
        not_before: datetime | None = None,
    ) -> MessageResult:
        """Enqueue ``message`` for ``recipient``, now or later.

        The caller's message is not changed; the stored copy gets a ``timestamp`` if it
        has none. A second send of the same ``message_id`` to the same queue, while the
        first is unsettled or within ``dedupe_window_s`` after it settled, is not
        enqueued again and reports ``duplicate=True``. A full queue, a Redis out of
        memory, or an unreachable Redis, gives ``delivered=False`` with the reason in
        ``error``; ``status`` (``SendStatus``) tells a message surely not enqueued
        (``REFUSED``, ``UNAVAILABLE``) from one that may be (``UNKNOWN``: send it again
        with the same ``message_id``, which the dedupe makes safe).

        ``delay_s`` (on the Redis server clock) or ``not_before`` (aware) schedule it:
        unreceivable until ``scheduled_for``, unsettled meanwhile, cancellable
        (:meth:`cancel_scheduled`; docs/concepts.md, "Sending later").

        Raises:
            MessageValidationError: ``message.sender``/``message.recipient`` differ from
                the arguments, the payload is not JSON-serialisable, or a bad schedule.
            PayloadTooLargeError: the envelope exceeds ``max_payload_bytes``.
        """
        check_address(sender, recipient, message)
        return (await self._sender.send([message], delay_s, not_before))[0]

    async def broadcast_message(
        self,
        sender: AgentId,
        message: AgentMessage,
        recipients: list[AgentId],
        *,
        delay_s: float | None = None,
        not_before: datetime | None = None,
    ) -> list[MessageResult]:
        """Send a copy of ``message`` to each recipient in one round trip.

        Each copy keeps the ``message_id`` (dedupe is per queue) with its own recipient;
        ``delay_s``/``not_before`` schedule every copy.

        Raises:
            MessageValidationError: ``message.sender`` differs from ``sender``.
        """
        return await self._sender.broadcast(sender, message, recipients, delay_s, not_before)

    async def send_many(
        self,
        messages: Sequence[AgentMessage],
        *,
        delay_s: float | Sequence[float | None] | None = None,
        not_before: datetime | Sequence[datetime | None] | None = None,
    ) -> list[MessageResult]:
        """Enqueue many messages (each to its own ``recipient``) in one round trip.

        Returns one result per message, in order. Invalid messages raise before anything
        is sent, as in :meth:`send_message`. ``delay_s``/``not_before``: one for all, or
        a list with one entry (or None) per message.
        """
        return await self._sender.send(messages, delay_s, not_before)

    async def cancel_scheduled(self, recipient: AgentId, message_id: str) -> bool:
        """Cancel a scheduled send still waiting; True when it was (its id is forgotten).

        False, changing nothing, once a receive or recovery has made it ready (at or
        after its due time), for an unknown id, and for a retry waiting out its backoff.
        """
        return await self._scheduler.cancel(recipient, message_id)

    # --- subscriptions and events -------------------------------------------------------

    def subscribe_to_messages(
        self, agent_id: AgentId, message_types: list[MessageType]
    ) -> MessageSubscription:
        """Subscribe ``agent_id`` to ``message_types`` (TTA's synchronous signature).

        The subscription is written to Redis in the background when an event loop runs,
        and in any case before the next :meth:`publish_event` of this coordinator; a
        write that fails is retried then. Use :meth:`subscribe` to await the write.
        """
        return self._subscriptions.subscribe_nowait(agent_id, message_types)

    async def subscribe(
        self, agent_id: AgentId, message_types: list[MessageType]
    ) -> MessageSubscription:
        """Subscribe ``agent_id`` to ``message_types``; stored in Redis when this returns."""
        return await self._subscriptions.subscribe(agent_id, message_types)

    async def unsubscribe(self, subscription_id: str) -> bool:
        """Remove a subscription; False when it does not exist."""
        return await self._subscriptions.unsubscribe(subscription_id)

    async def subscribers(self, message_type: MessageType) -> list[AgentId]:
        """The agents subscribed to ``message_type``."""
        return await self._subscriptions.subscribers(message_type)

    async def publish_event(
        self,
        sender: AgentId,
        message: AgentMessage,
        *,
        delay_s: float | None = None,
        not_before: datetime | None = None,
    ) -> list[MessageResult]:
        """Deliver ``message`` to every agent subscribed to its ``message_type``.

        ``message.recipient`` is replaced in each copy. Returns one result per subscriber
        (none when nobody is subscribed); a scheduled event goes to today's subscribers.
        """
        subscribers = await self.subscribers(message.message_type)
        return await self._sender.broadcast(sender, message, subscribers, delay_s, not_before)

    # --- request / reply ----------------------------------------------------------------

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
            RequestNotDeliveredError: the request was not enqueued (an unknown send
                outcome waits for the reply instead: see ``SendStatus.UNKNOWN``).
        """
        request = self._replier.router.request(
            sender,
            recipient,
            payload_or_message,
            timeout=timeout,
            priority=priority,
            headers=headers,
            expire=expire,
        )
        if self._timing is None:
            return await request
        return await timed_request(request, self._timing, str(recipient))

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
        return await self._replier.reply(sender, request, result, error=error, failure=failure)

    @property
    def reply_inbox(self) -> ReplyAddress:
        """This coordinator's reply inbox, as an address other modules can route to.

        A message whose headers hold ``address.headers()`` gets its reply here; await it
        with :meth:`expect_reply`. See docs/concepts.md, "Request and reply".
        """
        return self._replier.router.address

    def expect_reply(self, correlation_id: str, recipient: AgentId | None = None) -> PendingReply:
        """Await the reply carrying ``correlation_id`` in :attr:`reply_inbox`, from now on.

        Call it before sending what asks for the reply; then ``await pending.wait(t)``.

        Raises:
            MessageValidationError: a reply with this correlation id is already awaited.
        """
        return self._replier.router.expect(correlation_id, recipient)

    async def deliver_reply(self, address: ReplyAddress, reply: AgentMessage) -> None:
        """Deliver ``reply`` to the reply inbox at ``address`` (any coordinator's).

        Traced as a ``reply`` span whose context the delivered reply carries.
        """
        carried, trace = self._core.tracing.delivered_reply(reply, address.inbox)
        with trace:
            await self._replier.router.deliver_to(address, carried)

    async def aclose(self) -> None:
        """Finish background subscription writes and store writes (the client stays open).

        Blocking receives still waiting fail with ``CoordinationError``.
        """
        await self._core.waiter.aclose()
        await self._replier.aclose()
        await self._subscriptions.aclose()
        await self._core.lifecycle.aclose()
        if self._close_store and self._store is not None:
            await self._store.aclose()

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
        batch = await self._receiver.receive_batch(
            agent_id, 1, visibility_timeout=visibility_timeout, block=block
        )
        if batch and self.store_marker.pending:
            await self.store_marker.observe()
        return batch[0] if batch else None

    async def receive_batch(
        self,
        agent_id: AgentId,
        count: int,
        *,
        visibility_timeout: float = 5,
        block: float | None = None,
        also: Sequence[AgentId] = (),
        interrupt: asyncio.Event | None = None,
    ) -> list[ReceivedMessage]:
        """Reserve up to ``count`` messages in one round trip per queue, in delivery order.

        ``agent_id``'s queue first, then each queue in ``also`` (a worker passes its
        type queue, ``[agent_id.type_queue]``) while fewer than ``count`` are reserved;
        priorities are respected within each queue. Each ``ReceivedMessage.queue``
        says where to settle it. A blocking wait covers every queue in one shared read
        and ends at once, returning nothing, when ``interrupt`` is set (a stopping
        worker); a reservation is never cut short. Also returns expired leases of
        these queues to them and promotes due retries first, so queues with consumers
        heal themselves. See :meth:`receive`.

        Raises:
            ConfigurationError: ``count`` is not between 1 and 1000, or a time is out
                of range.
        """
        batch = await self._receiver.receive_batch(
            agent_id,
            count,
            visibility_timeout=visibility_timeout,
            block=block,
            also=also,
            interrupt=interrupt,
        )
        if batch and self.store_marker.pending:
            await self.store_marker.observe()
        return batch

    # --- settling -----------------------------------------------------------------------

    async def ack(self, agent_id: AgentId, token: str) -> bool:
        """Settle a delivery as done; it leaves no trace but its dedupe entry.

        ``agent_id`` is the queue the delivery came from (``received.queue``: the type
        queue for a message received with ``also=``). Returns False, changing nothing,
        for an unknown token or one already settled (or recovered after its lease
        expired).
        """
        return (await self._settler.ack_many(agent_id, [token]))[0]

    async def ack_many(self, agent_id: AgentId, tokens: Sequence[str]) -> list[bool]:
        """Ack many deliveries of one queue in one round trip; one flag per token."""
        return await self._settler.ack_many(agent_id, tokens)

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
        return await self._settler.nack(agent_id, token, failure, error)

    async def extend_lease(self, agent_id: AgentId, token: str, seconds: float) -> bool:
        """Push a lease's deadline to ``seconds`` from now; False if the token is not leased.

        Raises:
            ConfigurationError: ``seconds`` is not positive.
        """
        # A shortened lease is signalled on no stream: receives look at their queues again.
        self._receiver.forget_parked()
        return await self._settler.extend_lease(agent_id, token, seconds)

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
            return await self._recovery.recover(agent_id, force=False)
        return await self._recovery.recover_all()

    async def release_leases(self, agent_id: AgentId) -> int:
        """Return every leased message of ``agent_id``'s queue at once (its consumer died).

        Each release counts as a delivery, as an expired lease does. Returns how many
        messages were moved. An instance's release also returns the leases *it* holds in
        its type queue (its receives recorded it as their lessee), leaving the other
        instances' leases there alone; a type-wide id releases every lease of the type
        queue, for when no instance of the type is running.
        """
        self._receiver.forget_parked()
        return await self._recovery.release(agent_id)

    async def known_queues(self) -> list[AgentId]:
        """Every queue sent to under this prefix (from the queue index), sorted."""
        return await self._recovery.known_queues()

    async def restore_messages(self, messages: Sequence[PendingMessage]) -> list[bool]:
        """Enqueue messages again from a store after a Redis loss; one flag per message.

        Each message keeps its attempts, last error, priority, expiry and first enqueue
        time. A message whose id is unsettled in its queue, or settled within the dedupe
        window, is skipped (False), so restoring twice, or into a Redis that still holds
        some of the messages, enqueues each once. Not subject to ``queue_size``. Used by
        ``MessageStore.restore``; the store records the restores itself.
        """
        return await self._recovery.restore(messages)

    # --- inspection and dead letters ---------------------------------------------------

    async def queue_stats(self, agent_id: AgentId) -> QueueStats:
        """Ready (per priority), leased, delayed and dead counts of one queue, atomically."""
        return await self._dead_letters.queue_stats(agent_id)

    async def dead_letters(
        self, agent_id: AgentId, limit: int = 100
    ) -> list[DeadLetter | UndecodableDeadLetter]:
        """The oldest ``limit`` dead letters of ``agent_id``'s queue, every one of them.

        One that is not a deliverable message (failure ``malformed``, or undecodable) is
        an ``UndecodableDeadLetter`` with its raw fields; it cannot be replayed (a replay
        keeps it) and a purge removes it.

        Raises:
            ConfigurationError: ``limit`` is not positive.
        """
        return await self._dead_letters.dead_letters(agent_id, limit)

    async def replay_dead_letters(
        self, agent_id: AgentId, message_ids: Iterable[str] | None = None
    ) -> int:
        """Move dead letters back to the ready queue with fresh attempts (all, or these ids).

        A replayed message keeps its priority and last error, loses its expiry, and is not
        subject to ``queue_size``. A dead letter whose message id is live in the queue
        again is left where it is, and so is a malformed one (it cannot be delivered;
        inspect it with ``dead_letters``, remove it with ``purge_dead_letters``). Returns
        how many were replayed.
        """
        return await self._dead_letters.replay(agent_id, message_ids)

    async def purge_dead_letters(self, agent_id: AgentId) -> int:
        """Delete every dead letter of ``agent_id``'s queue; how many there were."""
        return await self._dead_letters.purge(agent_id)
