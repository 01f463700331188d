"""Recording each message's lifecycle (sent, leased, acked, retrying, dead, replayed) in a store.

The coordinator parts call one :class:`LifecycleRecorder` after every state change a
script reports. With a :class:`~tta_agent_coordination.store.MessageStore` attached it is
a :class:`StoreLifecycleRecorder`, which turns the scripts' outcomes into
:class:`~tta_agent_coordination.store.MessageEvent` objects and hands them to a
``StoreWriter`` (write-behind or synchronous, see ``docs/durability.md``); without one it
is :class:`NullLifecycleRecorder`, which does nothing and costs one awaited call per
batch, so the hot paths carry no ``if store`` branches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from tta_agent_coordination.models import AgentId, AgentMessage, FailureType
from tta_agent_coordination.observability.metrics import MessageMetrics
from tta_agent_coordination.redis.scripts.queue_ack import settled_entries
from tta_agent_coordination.redis.scripts.queue_common import REQUEUED, moved_entries
from tta_agent_coordination.redis.scripts.queue_nack import RETRY_SCHEDULED, NackOutcome
from tta_agent_coordination.redis.scripts.queue_receive import Delivery
from tta_agent_coordination.redis.scripts.queue_send import SendItem
from tta_agent_coordination.store import (
    BatcherStats,
    Durability,
    LifecycleKind,
    MessageEvent,
    MessageStore,
    StoreMetrics,
    StoreWriter,
)

__all__ = [
    "LifecycleRecorder",
    "NullLifecycleRecorder",
    "StoreLifecycleRecorder",
    "lifecycle_recorder",
]


class LifecycleRecorder(Protocol):
    """Where the coordinator reports every lifecycle change of every message."""

    @property
    def stats(self) -> BatcherStats | None:
        """Counters of the write-behind buffer; None without a store."""
        ...

    def check_envelope(self, message_id: str, envelope: str) -> None:
        """Refuse, before anything is sent, an envelope the store cannot keep.

        Raises:
            StorePayloadError: the store would refuse it.
        """
        ...

    async def sent(
        self,
        messages: Sequence[AgentMessage],
        items: Sequence[SendItem],
        codes: Sequence[int],
        dues: Sequence[int],
    ) -> None:
        """Record accepted sends (essential: in sync mode, written before this returns).

        ``codes`` holds one value per message: its incarnation (> 0) when enqueued, 0 for
        a duplicate, < 0 when refused (not recorded). ``dues`` holds the due time (ms,
        server clock) of each scheduled send, 0 for one ready at once.

        Raises:
            StoreError: in sync mode, the write failed.
        """
        ...

    async def leased(
        self, agent_id: AgentId, received: Sequence[Any], deliveries: Sequence[Any]
    ) -> None:
        """Record reservations.

        ``received[i]`` (a ``ReceivedMessage``) was decoded from ``deliveries[i]`` (in
        the layout of ``queue_receive.Delivery``).
        """
        ...

    async def acked(self, agent_id: AgentId, acked: list[Any]) -> None:
        """Record the raw ``AckOutcome.acked`` entries."""
        ...

    async def nacked(
        self, agent_id: AgentId, outcome: NackOutcome, error: str | None, failure: FailureType
    ) -> None:
        """Record a nack that scheduled a retry or dead-lettered."""
        ...

    async def moved(self, agent_id: AgentId, moved: list[Any]) -> None:
        """Record the raw ``moved`` entries of a receive or recover outcome."""
        ...

    async def replayed(self, agent_id: AgentId, message_ids: list[str], server_now_ms: int) -> None:
        """Record dead letters replayed with ``server_now_ms`` as their new incarnation."""
        ...

    async def cancelled(self, agent_id: AgentId, message_id: str, first_enqueued_ms: int) -> None:
        """Record a scheduled send cancelled before it was due."""
        ...

    async def flush(self) -> None:
        """Wait until every event so far is written."""
        ...

    async def aclose(self) -> None:
        """Write every pending event, then stop."""
        ...


class NullLifecycleRecorder:
    """Records nothing: the coordinator has no message store."""

    @property
    def stats(self) -> BatcherStats | None:
        """None: there is no buffer."""
        return None

    def check_envelope(self, message_id: str, envelope: str) -> None:
        """Accept every envelope."""

    async def sent(
        self,
        messages: Sequence[AgentMessage],
        items: Sequence[SendItem],
        codes: Sequence[int],
        dues: Sequence[int],
    ) -> None:
        """Discard."""

    async def leased(
        self, agent_id: AgentId, received: Sequence[Any], deliveries: Sequence[Any]
    ) -> None:
        """Discard."""

    async def acked(self, agent_id: AgentId, acked: list[Any]) -> None:
        """Discard."""

    async def nacked(
        self, agent_id: AgentId, outcome: NackOutcome, error: str | None, failure: FailureType
    ) -> None:
        """Discard."""

    async def moved(self, agent_id: AgentId, moved: list[Any]) -> None:
        """Discard."""

    async def replayed(self, agent_id: AgentId, message_ids: list[str], server_now_ms: int) -> None:
        """Discard."""

    async def cancelled(self, agent_id: AgentId, message_id: str, first_enqueued_ms: int) -> None:
        """Discard."""

    async def flush(self) -> None:
        """Nothing to wait for."""

    async def aclose(self) -> None:
        """Nothing to close."""


class StoreLifecycleRecorder:
    """Turns script outcomes into ``MessageEvent`` objects for a :class:`MessageStore`.

    Args:
        store: where the events go.
        durability: ``"async"`` (write-behind) or ``"sync"`` (a send is recorded before
            it is reported delivered).
        max_pending: events the write-behind buffer holds before senders wait.
        batch_size: most events per store write.
        flush_interval_s: how long a partial batch waits for more events.
        metrics: the coordinator's metrics; fed the buffer's gauges when it implements
            :class:`~tta_agent_coordination.store.StoreMetrics`.

    Raises:
        ConfigurationError: ``durability`` is neither ``"async"`` nor ``"sync"``.
    """

    def __init__(
        self,
        store: MessageStore,
        durability: Durability | str,
        *,
        max_pending: int,
        batch_size: int,
        flush_interval_s: float,
        metrics: MessageMetrics,
    ) -> None:
        self._store = store
        self._writer: StoreWriter[MessageEvent] = StoreWriter(
            store.record,
            durability,
            max_pending=max_pending,
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            name="messages",
            metrics=metrics if isinstance(metrics, StoreMetrics) else None,
        )

    @property
    def stats(self) -> BatcherStats | None:
        """The write-behind buffer's counters."""
        return self._writer.stats

    def check_envelope(self, message_id: str, envelope: str) -> None:
        """Ask the store whether it can keep ``envelope`` (see ``MessageStore.check_envelope``)."""
        self._store.check_envelope(message_id, envelope)

    async def sent(
        self,
        messages: Sequence[AgentMessage],
        items: Sequence[SendItem],
        codes: Sequence[int],
        dues: Sequence[int],
    ) -> None:
        """Record every send that was not refused, a scheduled one with its due time.

        A duplicate is recorded too (incarnation 0: it only creates a missing record), so
        that a send repeated after a failed sync write makes the record.
        """
        events = [
            MessageEvent(
                kind=LifecycleKind.SENT,
                message_id=m.message_id,
                recipient=m.recipient,
                incarnation=code,
                attempts=0,
                envelope=item.envelope,
                available_at_ms=due,
            )
            for m, item, code, due in zip(messages, items, codes, dues, strict=True)
            if code >= 0
        ]
        await self._writer.record(events, essential=True)

    async def leased(
        self, agent_id: AgentId, received: Sequence[Any], deliveries: Sequence[Any]
    ) -> None:
        """Record one ``leased`` event per reservation."""
        await self._writer.record(
            [
                MessageEvent(
                    kind=LifecycleKind.LEASED,
                    message_id=r.message.message_id,
                    recipient=agent_id,
                    incarnation=int(Delivery._make(raw).first_enqueued_ms),
                    attempts=r.attempts,
                )
                for r, raw in zip(received, deliveries, strict=True)
            ]
        )

    async def acked(self, agent_id: AgentId, acked: list[Any]) -> None:
        """Record one ``acked`` event per settled message."""
        await self._writer.record(
            [
                MessageEvent(
                    kind=LifecycleKind.ACKED,
                    message_id=entry.message_id,
                    recipient=agent_id,
                    incarnation=entry.first_enqueued_ms,
                    attempts=entry.deliveries,
                )
                for entry in settled_entries(acked)
            ]
        )

    async def nacked(
        self, agent_id: AgentId, outcome: NackOutcome, error: str | None, failure: FailureType
    ) -> None:
        """Record ``retrying`` or ``dead``."""
        kind = LifecycleKind.RETRYING if outcome.code == RETRY_SCHEDULED else LifecycleKind.DEAD
        await self._writer.record(
            [
                MessageEvent(
                    kind=kind,
                    message_id=outcome.message_id,
                    recipient=agent_id,
                    incarnation=outcome.first_enqueued_ms,
                    attempts=outcome.deliveries,
                    error=error,
                    failure=failure,
                )
            ]
        )

    async def moved(self, agent_id: AgentId, moved: list[Any]) -> None:
        """Record requeues (``retrying``) and dead letters (``dead``) of unsettled leases.

        Each with the failure type the script reports: ``timeout`` for a lease that ended
        unsettled or an expiry, ``malformed`` for an entry not in the library's format.
        """
        await self._writer.record(
            [
                MessageEvent(
                    kind=LifecycleKind.RETRYING
                    if entry.outcome == REQUEUED
                    else LifecycleKind.DEAD,
                    message_id=entry.message_id,
                    recipient=agent_id,
                    incarnation=entry.first_enqueued_ms,
                    attempts=entry.deliveries,
                    error=entry.reason,
                    failure=entry.failure,
                )
                for entry in moved_entries(moved)
            ]
        )

    async def replayed(self, agent_id: AgentId, message_ids: list[str], server_now_ms: int) -> None:
        """Record one ``replayed`` event per message."""
        await self._writer.record(
            [
                MessageEvent(
                    kind=LifecycleKind.REPLAYED,
                    message_id=msgid,
                    recipient=agent_id,
                    incarnation=server_now_ms,
                )
                for msgid in message_ids
            ]
        )

    async def cancelled(self, agent_id: AgentId, message_id: str, first_enqueued_ms: int) -> None:
        """Record one ``cancelled`` event (settled: a restore leaves it out).

        Not essential: the cancellation has happened in Redis; in sync mode a failed write
        is deferred to the write-behind buffer (retried) rather than raised.
        """
        await self._writer.record(
            [
                MessageEvent(
                    kind=LifecycleKind.CANCELLED,
                    message_id=message_id,
                    recipient=agent_id,
                    incarnation=first_enqueued_ms,
                )
            ]
        )

    async def flush(self) -> None:
        """Wait until every event so far is written."""
        await self._writer.flush()

    async def aclose(self) -> None:
        """Write every pending event, then stop."""
        await self._writer.aclose()


def lifecycle_recorder(
    store: MessageStore | None,
    durability: Durability | str,
    *,
    max_pending: int,
    batch_size: int,
    flush_interval_s: float,
    metrics: MessageMetrics,
) -> LifecycleRecorder:
    """A :class:`StoreLifecycleRecorder` for ``store``, or the null recorder without one.

    Raises:
        ConfigurationError: with a store, ``durability`` is neither ``"async"`` nor
            ``"sync"``.
    """
    if store is None:
        return NullLifecycleRecorder()
    return StoreLifecycleRecorder(
        store,
        durability,
        max_pending=max_pending,
        batch_size=batch_size,
        flush_interval_s=flush_interval_s,
        metrics=metrics,
    )
