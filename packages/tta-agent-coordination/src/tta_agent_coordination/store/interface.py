"""The :class:`MessageStore` interface, and the protocols a store meets around it.

The core never imports a store implementation; the Postgres adapter
(``tta-agent-coordination-postgres``) implements :class:`MessageStore`. Its contract
(idempotent, order-insensitive, all-or-nothing writes) rests on the event versions of
:mod:`tta_agent_coordination.store.events`. See ``docs/durability.md``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from tta_agent_coordination.models import AgentId
from tta_agent_coordination.store.events import AgentEvent, MessageEvent, PendingMessage

__all__ = ["MessageStore", "RestoreTarget", "StoreMetrics"]


@runtime_checkable
class RestoreTarget(Protocol):
    """What a store restores into (``RedisMessageCoordinator`` is one)."""

    async def restore_messages(self, messages: Sequence[PendingMessage]) -> list[bool]:
        """Enqueue each message unless its id is already live; True where it was enqueued."""
        ...


@runtime_checkable
class StoreMetrics(Protocol):
    """Optional metrics of a store writer; a coordinator's metrics object may implement it."""

    def inc_store_backpressure(self, n: int = 1) -> None:
        """Count producers that had to wait because the write-behind buffer was full."""
        ...

    def set_store_pending(self, pending: int) -> None:
        """Events accepted but not yet written."""
        ...


class MessageStore(ABC):
    """The durable record of every message's lifecycle and of the agent directory.

    Implementations must make :meth:`record` idempotent and order-insensitive (by event
    version, see :mod:`tta_agent_coordination.store.events`) and all-or-nothing per call.
    """

    @abstractmethod
    async def record(self, events: Sequence[MessageEvent]) -> None:
        """Write message lifecycle events; durable when this returns.

        Raises:
            StoreUnavailableError: the store failed; nothing of this call was written.
            StorePayloadError: an event cannot be stored; nothing of this call was written.
        """

    @abstractmethod
    async def record_agents(self, events: Sequence[AgentEvent]) -> None:
        """Write agent registrations and deregistrations; durable when this returns."""

    @abstractmethod
    async def restore(self, coordinator: RestoreTarget) -> int:
        """Enqueue again, exactly once, every unsettled message; how many were enqueued."""

    async def record_seen(self, agent_ids: Sequence[AgentId]) -> None:  # noqa: B027
        """Note that ``agent_ids`` were alive just now (their heartbeats succeeded).

        A registry calls this at most every ``store_seen_interval_s`` with the agents it
        holds, off the heartbeat path; a failure is logged and the next call tries again,
        so it need not be durable or retried. Agents deregistered in the store must stay
        deregistered. The default records nothing (a store written before this method
        existed keeps working).
        """

    def check_envelope(self, message_id: str, envelope: str) -> None:  # noqa: B027
        """Refuse, before anything is sent, an envelope this store could not record.

        The default accepts everything.

        Raises:
            StorePayloadError: the envelope cannot be stored.
        """

    async def aclose(self) -> None:  # noqa: B027
        """Release the store's resources (the default has none)."""
