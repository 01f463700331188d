"""Abstract interfaces that back-ends implement and the runtime depends on.

The core defines them; the Redis implementations live in :mod:`.redis`, and other
packages (the Postgres adapter, host applications) implement or consume them without
the core importing those packages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from tta_agent_coordination.agents import AgentRecord

from .models import (
    AgentId,
    AgentMessage,
    FailureType,
    MessageResult,
    MessageSubscription,
    MessageType,
    ReceivedMessage,
)

__all__ = ["AgentRegistry", "CallGuard", "MessageCoordinator", "RegistrableAgent"]

T = TypeVar("T")


class MessageCoordinator(ABC):
    """Per-agent prioritised queues with at-least-once delivery, leases and dead letters.

    These are the eight methods of TTA's original contract; implementations add more.
    """

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


class AgentRegistry(ABC):
    """Presence of agents: registration with an ownership lease, heartbeats, discovery.

    The names and meanings follow TTA's original registry: ``register``, ``deregister``,
    ``start_heartbeats``/``stop_heartbeats`` and ``list_registered()`` entries that carry
    ``alive``.
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
