"""The handler table of a worker: which function handles which message.

Handlers are registered per message type and, optionally, per *kind*: the value of one
payload field (``"kind"`` by default). A message is dispatched to the most specific
match: (type, kind), then (type, any kind), then (any type, kind), then (any, any).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.interfaces import CallGuard
from tta_agent_coordination.models import AgentMessage, MessageType

if TYPE_CHECKING:
    from tta_agent_coordination.runtime.context import MessageContext

__all__ = ["Handler", "HandlerDecorators", "HandlerSpec", "HandlerTable"]

Handler = Callable[["MessageContext[Any]"], Awaitable[Any]]
"""An async function taking the message's context; its return value is the reply."""

H = TypeVar("H", bound=Handler)


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """One registered handler and how it runs.

    Attributes:
        fn: the handler.
        message_type: the message type it handles (None: any).
        kind: the payload kind it handles (None: any).
        payload_model: when set, the payload is validated into this pydantic model
            (available as ``ctx.payload``); a payload that does not validate fails the
            message permanently.
        timeout: seconds the handler may run before it is cancelled and the message
            fails with failure ``timeout`` (None: no limit; the lease is kept extended).
        guard: a circuit breaker and retry policy around the handler (overrides the
            worker's).
    """

    fn: Handler
    message_type: MessageType | None
    kind: str | None
    payload_model: type[BaseModel] | None = None
    timeout: float | None = None
    guard: CallGuard | None = None

    def parse_payload(self, payload: Mapping[str, Any]) -> Any:
        """The payload as the handler sees it (raises pydantic's ``ValidationError``)."""
        if self.payload_model is None:
            return payload
        return self.payload_model.model_validate(payload)

    @property
    def name(self) -> str:
        """The handler's qualified name, for logs."""
        return getattr(self.fn, "__qualname__", repr(self.fn))


class HandlerTable:
    """Handlers by (message type, kind), with the most specific match winning."""

    def __init__(self, kind_field: str = "kind") -> None:
        if not kind_field:
            raise ConfigurationError("kind_field must be a non-empty payload field name")
        self._kind_field = kind_field
        self._specs: dict[tuple[MessageType | None, str | None], HandlerSpec] = {}

    @property
    def kind_field(self) -> str:
        """The payload field whose value selects a handler by kind."""
        return self._kind_field

    def add(self, spec: HandlerSpec) -> None:
        """Register ``spec``.

        Raises:
            ConfigurationError: a handler for the same type and kind exists, or the
                timeout is not positive.
        """
        if spec.timeout is not None and not spec.timeout > 0:
            raise ConfigurationError(f"handler timeout must be > 0 seconds, got {spec.timeout}")
        key = (spec.message_type, spec.kind)
        existing = self._specs.get(key)
        if existing is not None:
            raise ConfigurationError(
                f"{existing.name} already handles message type "
                f"{spec.message_type or 'any'} with kind {spec.kind or 'any'}"
            )
        self._specs[key] = spec

    def __len__(self) -> int:
        return len(self._specs)

    def kind_of(self, message: AgentMessage) -> str | None:
        """The message's kind (the payload's kind field, when it is a string)."""
        value = message.payload.get(self._kind_field)
        return value if isinstance(value, str) else None

    def find(self, message: AgentMessage) -> HandlerSpec | None:
        """The handler for ``message``, or None when no handler matches."""
        kind = self.kind_of(message)
        mtype = message.message_type
        candidates: tuple[tuple[MessageType | None, str | None], ...] = (
            ((mtype, kind), (mtype, None), (None, kind), (None, None))
            if kind is not None
            else ((mtype, None), (None, None))
        )
        for key in candidates:
            spec = self._specs.get(key)
            if spec is not None:
                return spec
        return None

    def describe(self) -> list[tuple[str, str, str]]:
        """(message type, kind, handler name) of every handler, for listings."""
        return sorted(
            (mtype.value if mtype else "*", kind or "*", spec.name)
            for (mtype, kind), spec in self._specs.items()
        )


class HandlerDecorators(ABC):
    """The decorators that register handlers, built on :meth:`add_handler` (``AgentWorker``)."""

    @abstractmethod
    def add_handler(
        self,
        fn: Handler,
        message_type: MessageType | None = None,
        *,
        kind: str | None = None,
        payload: type[BaseModel] | None = None,
        timeout: float | None = None,
        guard: CallGuard | None = None,
    ) -> None:
        """Register ``fn`` without a decorator; see :meth:`handler`."""

    def handler(
        self,
        message_type: MessageType | None = None,
        *,
        kind: str | None = None,
        payload: type[BaseModel] | None = None,
        timeout: float | None = None,
        guard: CallGuard | None = None,
    ) -> Callable[[H], H]:
        """Register the decorated async function for ``message_type`` (None: any type).

        ``kind`` restricts it to messages whose payload's kind field has that value;
        ``payload`` validates the payload into a pydantic model (``ctx.payload``), an
        invalid payload failing the message permanently; ``timeout`` cancels a handler
        that runs longer (failure ``timeout``, retried). The function receives a
        :class:`MessageContext`; for a request, its return value (a dict, a pydantic
        model, None or any JSON value) is the reply.

        Raises:
            ConfigurationError: a handler for the same type and kind exists.
            WorkerError: the worker has already started.
        """
        resolved = MessageType(message_type) if message_type is not None else None

        def register(fn: H) -> H:
            self.add_handler(fn, resolved, kind=kind, payload=payload, timeout=timeout, guard=guard)
            return fn

        return register

    def on_request(
        self,
        *,
        kind: str | None = None,
        payload: type[BaseModel] | None = None,
        timeout: float | None = None,
        guard: CallGuard | None = None,
    ) -> Callable[[H], H]:
        """:meth:`handler` for ``REQUEST`` messages."""
        return self.handler(
            MessageType.REQUEST, kind=kind, payload=payload, timeout=timeout, guard=guard
        )

    def on_event(
        self,
        *,
        kind: str | None = None,
        payload: type[BaseModel] | None = None,
        timeout: float | None = None,
        guard: CallGuard | None = None,
    ) -> Callable[[H], H]:
        """:meth:`handler` for ``EVENT`` messages."""
        return self.handler(
            MessageType.EVENT, kind=kind, payload=payload, timeout=timeout, guard=guard
        )

    def on_response(
        self,
        *,
        kind: str | None = None,
        payload: type[BaseModel] | None = None,
        timeout: float | None = None,
        guard: CallGuard | None = None,
    ) -> Callable[[H], H]:
        """:meth:`handler` for ``RESPONSE`` messages (replies sent to this agent's queue)."""
        return self.handler(
            MessageType.RESPONSE, kind=kind, payload=payload, timeout=timeout, guard=guard
        )
