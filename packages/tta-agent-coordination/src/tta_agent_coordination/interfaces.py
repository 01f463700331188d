"""Abstract interfaces that back-ends implement and the runtime depends on.

The core defines them; the Redis implementations live in :mod:`.redis`, and other
packages (the Postgres adapter, host applications) implement or consume them without
the core importing those packages. ``AgentWorker`` and ``MessageContext`` know only
these interfaces, so a second back-end (an in-memory one for unit tests, say) runs
workers unchanged. See ``docs/worker.md`` ("Other back-ends").

What a back-end must write:

- **Abstract**: TTA's original contract (the eight coordinator methods, the registry's
  registration, heartbeat and read methods), plus two members the worker needs for a
  promise it documents and that no default can keep: ``MessageCoordinator.config`` (the
  retry limit tells the worker whether a failure is final, so that a requester gets its
  error reply before the message is dead-lettered) and ``AgentRegistry.held`` (how a
  worker learns that its agent id was taken over or evicted, and stops).
- **Derived defaults**: methods that follow from the abstract ones work as they are
  and are overridden to be faster: ``receive_batch`` (``receive`` in a loop; a blocking
  wait becomes polling), ``ack_many``, ``send_many`` and ``reply`` (a reply as a
  ``RESPONSE`` message to ``reply_to``).
- **Honest defaults**: ``extend_lease`` returns False (the lease is not extended: the
  worker marks ``ctx.lease_lost`` and the message may be delivered again after its
  visibility timeout, at least once as always); ``heartbeats_running`` is False (the
  worker starts the heartbeats itself; ``start_heartbeats`` is idempotent);
  ``ownership`` is derived from ``held`` (held or lost, never unverified: a registry
  that can tell a stall overrides it, as ``RedisAgentRegistry`` does).
- **Optional features** raise ``NotImplementedError`` naming the method until a
  back-end provides them: ``subscribe``/``unsubscribe`` (a worker with
  ``subscriptions=`` then fails at ``start``), ``publish_event`` and ``request`` (the
  handler that calls them fails, as with any error), ``release_leases`` (crash
  hand-over) and ``queue_stats`` (operations).
- **Observability**: ``metrics`` is None by default (the worker then times nothing); a
  back-end returns the metrics object it reports to, so that a worker on it reports its
  handler durations there too.

So a subclass written against the eight original methods keeps working; it needs
``config`` (and, for a registry, ``held``) to be instantiated.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, NoReturn, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from tta_agent_coordination.agents import AgentRecord
from tta_agent_coordination.observability.metrics import MessageMetrics
from tta_agent_coordination.replies import build_reply, expects_reply

from .errors import ConfigurationError
from .models import (
    AgentId,
    AgentMessage,
    FailureType,
    MessagePriority,
    MessageResult,
    MessageSubscription,
    MessageType,
    QueueStats,
    ReceivedMessage,
)

__all__ = [
    "AgentRegistry",
    "CallGuard",
    "CoordinatorLimits",
    "MessageCoordinator",
    "Ownership",
    "RegistrableAgent",
]

T = TypeVar("T")

_POLL_STEP_S = 0.05
"""How often the default ``receive_batch`` asks again while it waits for a message."""


class CoordinatorLimits(Protocol):
    """The limits a coordinator runs with: TTA's ``configure`` settings, read back."""

    @property
    def queue_size(self) -> int:
        """Unsettled messages a queue holds before sends are refused."""
        ...

    @property
    def retry_attempts(self) -> int:
        """Retries after the first delivery; the failure after the last is final."""
        ...

    @property
    def backoff_base(self) -> float:
        """Seconds before the first retry."""
        ...

    @property
    def backoff_factor(self) -> float:
        """Growth of the delay per retry."""
        ...

    @property
    def backoff_max(self) -> float:
        """Cap on a retry delay, in seconds."""
        ...


class MessageCoordinator(ABC):
    """Per-agent prioritised queues with at-least-once delivery, leases and dead letters.

    The first eight methods are TTA's original contract; the rest are what the worker
    runtime uses (see the module docstring for which a back-end must write).
    """

    # --- TTA's original contract ----------------------------------------------------------

    @abstractmethod
    async def send_message(
        self, sender: AgentId, recipient: AgentId, message: AgentMessage
    ) -> MessageResult:
        """Enqueue ``message`` for ``recipient``; a refusal is a result, not an exception."""

    @abstractmethod
    async def broadcast_message(
        self, sender: AgentId, message: AgentMessage, recipients: list[AgentId]
    ) -> list[MessageResult]:
        """Send a copy of ``message`` to each recipient; one result per recipient, in order."""

    @abstractmethod
    def subscribe_to_messages(
        self, agent_id: AgentId, message_types: list[MessageType]
    ) -> MessageSubscription:
        """Subscribe ``agent_id`` to events of ``message_types`` and return the handle."""

    @abstractmethod
    async def receive(
        self, agent_id: AgentId, visibility_timeout: float = 5
    ) -> ReceivedMessage | None:
        """Reserve the next message (priority, then FIFO) for ``visibility_timeout`` seconds."""

    @abstractmethod
    async def ack(self, agent_id: AgentId, token: str) -> bool:
        """Settle a reserved message as done; False for an unknown or already settled token."""

    @abstractmethod
    async def nack(
        self,
        agent_id: AgentId,
        token: str,
        failure: FailureType = FailureType.TRANSIENT,
        error: str | None = None,
    ) -> bool:
        """Settle a reserved message as failed: retry with backoff, or dead-letter it."""

    @abstractmethod
    async def recover_pending(self, agent_id: AgentId | None = None) -> int:
        """Return expired leases and due retries to the ready queues; the count recovered."""

    @abstractmethod
    async def configure(
        self,
        *,
        queue_size: int | None = None,
        retry_attempts: int | None = None,
        backoff_base: float | None = None,
        backoff_factor: float | None = None,
        backoff_max: float | None = None,
    ) -> None:
        """Change limits and backoff at run time; invalid values raise ``ConfigurationError``."""

    # --- what the worker runtime uses -----------------------------------------------------

    @property
    @abstractmethod
    def config(self) -> CoordinatorLimits:
        """The limits in force now (``configure`` changes them)."""

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
        """Reserve up to ``count`` messages, in delivery order.

        ``agent_id``'s queue first, then each queue of ``also`` (a worker passes its
        type queue) while fewer than ``count`` are reserved; each message's ``queue``
        says which queue to settle it on. With ``block`` seconds, waits that long for a
        first message instead of returning an empty list at once; a set ``interrupt``
        ends the wait at once (with nothing). This default calls :meth:`receive` once
        per message and, while it waits, asks again every 50 ms: a back-end with a
        blocking read overrides it.

        Raises:
            ConfigurationError: ``count`` is below 1.
        """
        if count < 1:
            raise ConfigurationError(f"count must be at least 1, got {count}")
        queues = list(dict.fromkeys((agent_id, *also)))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (block or 0.0)
        while True:
            batch: list[ReceivedMessage] = []
            for queue in queues:
                while len(batch) < count:
                    received = await self.receive(queue, visibility_timeout)
                    if received is None:
                        break
                    if received.queue is None:
                        received = received.model_copy(update={"queue": queue})
                    batch.append(received)
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or (interrupt is not None and interrupt.is_set()):
                return batch
            await asyncio.sleep(min(_POLL_STEP_S, remaining))

    async def ack_many(self, agent_id: AgentId, tokens: Sequence[str]) -> list[bool]:
        """Settle many reserved messages as done; one flag per token, as :meth:`ack` gives.

        This default acks one token after the other.
        """
        return [await self.ack(agent_id, token) for token in tokens]

    async def extend_lease(self, agent_id: AgentId, token: str, seconds: float) -> bool:
        """Push a lease's deadline to ``seconds`` from now; False when it was not extended.

        This default extends nothing and returns False: a back-end without lease
        extension lets a long handler's lease run out (the worker sets
        ``ctx.lease_lost``) and the message may be delivered again.
        """
        return False

    async def send_many(self, messages: Sequence[AgentMessage]) -> list[MessageResult]:
        """Enqueue many messages, each to its own ``recipient``; one result per message.

        This default sends one message after the other with :meth:`send_message`.
        """
        return [await self.send_message(m.sender, m.recipient, m) for m in messages]

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

        Returns False when the request expects no reply or the reply was not enqueued.
        This default sends the reply as a ``RESPONSE`` message to the request's
        ``reply_to``; a back-end with reply inboxes (see :meth:`request`) overrides it.
        """
        if not expects_reply(request):
            return False
        response = build_reply(request, sender, result, error=error, failure=failure)
        outcome = await self.send_message(sender, response.recipient, response)
        return outcome.delivered

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
        """Send a request to ``recipient`` and wait for its ``RESPONSE`` message.

        Raises:
            RequestTimeoutError: no reply within ``timeout`` seconds.
            RemoteHandlerError: the handler failed for good.
            RequestNotDeliveredError: the request could not be enqueued.
            NotImplementedError: the back-end has no request/reply (this default).
        """
        _unsupported(self, "request", "MessageContext.request")

    async def subscribe(
        self, agent_id: AgentId, message_types: list[MessageType]
    ) -> MessageSubscription:
        """Subscribe ``agent_id`` to ``message_types``; stored when this returns.

        Raises:
            NotImplementedError: the back-end has no stored subscriptions (this default).
        """
        _unsupported(self, "subscribe", "AgentWorker(subscriptions=...)")

    async def unsubscribe(self, subscription_id: str) -> bool:
        """Remove a subscription; False when it does not exist.

        Raises:
            NotImplementedError: the back-end has no stored subscriptions (this default).
        """
        _unsupported(self, "unsubscribe", "AgentWorker(subscriptions=...)")

    async def publish_event(self, sender: AgentId, message: AgentMessage) -> list[MessageResult]:
        """Deliver ``message`` to every agent subscribed to its type; one result each.

        Raises:
            NotImplementedError: the back-end has no subscriptions (this default).
        """
        _unsupported(self, "publish_event", "MessageContext.publish")

    async def release_leases(self, agent_id: AgentId) -> int:
        """Return every leased message of ``agent_id``'s queue at once (its consumer died).

        Raises:
            NotImplementedError: the back-end cannot (this default); leases then run out.
        """
        _unsupported(self, "release_leases", "crash hand-over")

    async def queue_stats(self, agent_id: AgentId) -> QueueStats:
        """Ready (per priority), leased, delayed and dead counts of one queue.

        Raises:
            NotImplementedError: the back-end cannot count (this default).
        """
        _unsupported(self, "queue_stats", "operations")

    @property
    def metrics(self) -> MessageMetrics | None:
        """The metrics object this coordinator reports to (None: none, this default).

        ``AgentWorker`` reports its handler durations to it when it implements
        :class:`~tta_agent_coordination.observability.metrics.TimingMetrics`.
        """
        return None


def _unsupported(backend: object, method: str, needed_by: str) -> NoReturn:
    raise NotImplementedError(
        f"{type(backend).__name__} does not implement {method} (needed by {needed_by})"
    )


class CallGuard(Protocol):
    """Wraps every call a component makes to Redis (circuit breaker, retries, or nothing).

    ``retry`` says whether the operation is safe to repeat after an ambiguous failure.
    """

    async def run(
        self, operation: str, fn: Callable[[], Awaitable[T]], *, retry: bool = False
    ) -> T:
        """Run ``fn`` under the guard; ``operation`` names it in logs and errors."""
        ...


@runtime_checkable
class RegistrableAgent(Protocol):
    """Anything with an ``agent_id`` and a ``name`` can be registered.

    Optional hooks, found by name and sync or async: ``capabilities`` (an iterable of
    capabilities, attribute or method), ``status_snapshot()`` (a status string or a
    JSON-able mapping, sent with heartbeats), ``export_state()`` (JSON-able state kept
    across registrations) and ``import_state(state)`` (receives it back).
    """

    @property
    def agent_id(self) -> AgentId:
        """The address the agent is registered under."""
        ...

    @property
    def name(self) -> str:
        """A human-readable name."""
        ...


class Ownership(StrEnum):
    """What a registry knows, locally and at once, about a registration it holds.

    A worker leases new messages only while its registration is ``HELD``: this is its
    fencing against a split brain (see ``docs/worker.md``, "Fencing").
    """

    HELD = "held"
    """Held, and renewed recently enough that its liveness has not run out."""
    UNVERIFIED = "unverified"
    """Held here, but not renewed within its TTL (the process stalled, or the back-end
    was unreachable): another process may have taken it over. The registry verifies it
    with its next heartbeat, which makes it ``HELD`` or ``LOST``."""
    LOST = "lost"
    """Not held: never registered here, deregistered, taken over or evicted."""


class AgentRegistry(ABC):
    """Presence of agents: registration with an ownership lease, heartbeats, discovery.

    The names and meanings follow TTA's original registry: ``register``, ``deregister``,
    ``start_heartbeats``/``stop_heartbeats`` and ``list_registered()`` entries that carry
    ``alive``. ``held`` and ``heartbeats_running`` are what the worker runtime adds.
    """

    @abstractmethod
    async def register(self, agent: RegistrableAgent, *, takeover: bool = False) -> AgentRecord:
        """Register ``agent`` (restoring retained state first); complete when it returns."""

    @abstractmethod
    async def register_id(
        self,
        agent_id: AgentId,
        *,
        name: str | None = None,
        capabilities: Any = None,
        metadata: dict[str, Any] | None = None,
        takeover: bool = False,
    ) -> AgentRecord:
        """Register an agent id without an agent object."""

    @abstractmethod
    async def deregister(self, agent: AgentId | RegistrableAgent) -> bool:
        """Remove this owner's registration; False when it holds none."""

    @abstractmethod
    async def heartbeat(self, agent: AgentId | RegistrableAgent) -> datetime:
        """Renew the registration's liveness now; the new expiry."""

    @abstractmethod
    async def get(self, agent_id: AgentId) -> AgentRecord | None:
        """The record of ``agent_id``, or None when it is not registered."""

    @abstractmethod
    async def list_registered(self) -> list[AgentRecord]:
        """Every registration, each with ``alive``."""

    @abstractmethod
    async def discover(
        self, type: str | None = None, capability: str | None = None, alive_only: bool = True
    ) -> list[AgentRecord]:
        """Registrations of an agent type and/or with a capability."""

    @abstractmethod
    def start_heartbeats(self) -> None:
        """Start renewing every registration this registry holds (idempotent)."""

    @abstractmethod
    async def stop_heartbeats(self) -> None:
        """Stop the heartbeats and wait until they have stopped (idempotent)."""

    @abstractmethod
    def held(self) -> list[AgentId]:
        """The agent ids this registry instance holds registrations for now.

        An id leaves the list when it is deregistered, or when the registry learns that
        another owner took it over or an operator evicted it: a worker checks this to
        stop being an agent it no longer is.
        """

    @property
    def heartbeats_running(self) -> bool:
        """Whether the heartbeats run now.

        This default says False: a worker then calls :meth:`start_heartbeats` itself,
        which is idempotent.
        """
        return False

    def ownership(self, agent_id: AgentId) -> Ownership:
        """Whether this registry holds ``agent_id``'s registration and knows it is live.

        Called by a worker before every lease batch, so it must be cheap and must not
        block: local state only. A registry that finds the registration unverified
        (its liveness may have run out) should verify it at once, with a heartbeat.

        This default derives it from :meth:`held`: ``HELD`` or ``LOST``, never
        ``UNVERIFIED`` (it cannot tell a stall), in time linear in the registrations
        held. Override it with a constant-time check that detects stalls.
        """
        return Ownership.HELD if agent_id in self.held() else Ownership.LOST
