"""Data models shared by every part of the library.

They keep the names and meanings of TTA's original orchestration models, with a generic
:class:`AgentId` (any agent type, not an enum) and a few optional fields on
:class:`AgentMessage` for request/reply and expiry.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any, Self, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import InvalidAgentIdError

__all__ = [
    "DEFAULT_INSTANCE",
    "AgentId",
    "AgentMessage",
    "DeadLetter",
    "FailureType",
    "MessagePriority",
    "MessageResult",
    "MessageSubscription",
    "MessageType",
    "QueueMessage",
    "QueueStats",
    "ReceivedMessage",
    "RoutingKey",
    "SendStatus",
    "UndecodableDeadLetter",
]

DEFAULT_INSTANCE = "default"
"""The instance a type-wide ``AgentId`` stands for where one concrete agent is needed
(a worker's identity, a registration): see :meth:`AgentId.concrete`."""

# Names end up inside Redis keys and hash tags: no ':' (our separator), no braces (hash
# tags), no glob characters or whitespace (SCAN patterns), and a leading letter or digit.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def _validate_name(kind: str, value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(
            f"invalid agent {kind} {value!r}: use 1-128 characters from letters, digits, "
            "'_', '.', '-', starting with a letter or digit"
        )
    return value


class MessageType(StrEnum):
    """What a message is: a request that expects a response, a response, or an event."""

    REQUEST = "request"
    RESPONSE = "response"
    EVENT = "event"


class MessagePriority(int, Enum):
    """Delivery priority: every ready HIGH message is delivered before NORMAL, then LOW."""

    LOW = 1
    NORMAL = 5
    HIGH = 9


class FailureType(StrEnum):
    """Why a message failed: transient failures are retried, permanent ones dead-lettered."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"
    TIMEOUT = "timeout"
    MALFORMED = "malformed"
    """A stored entry not in the library's format (another client, a bug, a rolling
    upgrade): dead-lettered as it was found, never delivered or replayed."""


class RoutingKey(BaseModel):
    """Optional routing metadata carried with a message (a topic and free-form tags)."""

    model_config = ConfigDict(frozen=True)

    topic: str | None = None
    tags: tuple[str, ...] = ()


class AgentId(BaseModel):
    """The address of an agent: its ``type`` and, for one agent, its ``instance``.

    ``AgentId("world_builder", "w1")`` is one agent (an instance). ``AgentId("world_builder")``
    (``instance=None``) is **type-wide**: as a recipient it means "any live instance of
    that type", whose workers compete for its messages (see ``docs/concepts.md``,
    "Instance vs type addressing"). Where one concrete agent is needed (a worker's
    identity, a registration) a type-wide id stands for its :data:`DEFAULT_INSTANCE`
    (:meth:`concrete`). Values are validated so that they are safe inside Redis keys; a
    string enum member (such as TTA's ``AgentType``) is accepted and stored as its value.
    Frozen and hashable; ``str(agent_id)`` is ``"type:instance"``, or ``"type"`` for a
    type-wide id, and :meth:`parse` is the reverse.
    """

    model_config = ConfigDict(frozen=True)

    type: str
    instance: str | None = None

    def __init__(self, type: str | None = None, instance: str | None = None, **data: Any) -> None:
        if type is not None:
            data["type"] = type
        data["instance"] = instance
        super().__init__(**data)

    @field_validator("type", mode="before")
    @classmethod
    def _check_type(cls, value: Any) -> Any:
        if isinstance(value, Enum):
            value = value.value
        if isinstance(value, str):
            return _validate_name("type", value)
        return value

    @field_validator("instance", mode="before")
    @classmethod
    def _check_instance(cls, value: Any) -> Any:
        if isinstance(value, Enum):
            value = value.value
        if isinstance(value, str):
            return _validate_name("instance", value)
        return value

    def __str__(self) -> str:
        if self.instance is None:
            return self.type
        return f"{self.type}:{self.instance}"

    def __hash__(self) -> int:
        return hash((self.type, self.instance))

    @property
    def is_type_wide(self) -> bool:
        """Whether this id names any instance of its type (``instance`` is None)."""
        return self.instance is None

    @property
    def type_queue(self) -> AgentId:
        """The type-wide id of this id's type: the queue every instance competes on."""
        if self.instance is None:
            return self
        return AgentId(self.type)

    def concrete(self) -> AgentId:
        """This id when it names one instance, else its :data:`DEFAULT_INSTANCE`.

        A worker's identity and a registration need one concrete agent:
        ``AgentWorker(..., AgentId("calc"), ...)`` runs as ``calc:default`` and consumes
        both its own queue and the type queue of ``calc``.
        """
        if self.instance is not None:
            return self
        return AgentId(self.type, DEFAULT_INSTANCE)

    @classmethod
    def parse(cls, text: str) -> AgentId:
        """Parse ``"type"`` (a type-wide id) or ``"type:instance"`` back into an ``AgentId``.

        Raises:
            InvalidAgentIdError: the text is not of that form or holds unsafe characters.
        """
        agent_type, sep, instance = text.partition(":")
        if sep and not instance:
            raise InvalidAgentIdError(f"invalid agent id {text!r}: empty instance after ':'")
        try:
            _validate_name("type", agent_type)
            if sep:
                _validate_name("instance", instance)
        except ValueError as exc:
            raise InvalidAgentIdError(f"invalid agent id {text!r}: {exc}") from None
        return cls(agent_type, instance if sep else None)


# Validation (of a nested id in a decoded message, of ``model_validate``) need not run the
# positional ``__init__`` above: the field validators alone give the same id (a missing or
# None instance is type-wide; enums become their values; unsafe names raise). Skipping it
# makes decoding a message ~40% cheaper; ``AgentId(...)`` calls still use ``__init__``.
AgentId.__pydantic_custom_init__ = False
AgentId.model_rebuild(force=True)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _new_message_id() -> str:
    # 128 random bits as 32 hex digits, like uuid4().hex, at a fifth of its cost.
    return os.urandom(16).hex()


class AgentMessage(BaseModel):
    """A message from one agent to another.

    ``message_id`` is the idempotency key: sending the same id to the same queue twice
    within the coordinator's dedupe window enqueues it once. It defaults to 128 random bits
    (32 hex digits, as ``uuid4().hex``).
    """

    message_id: str = Field(default_factory=_new_message_id, min_length=6, max_length=256)
    sender: AgentId
    recipient: AgentId
    message_type: MessageType
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: MessagePriority = MessagePriority.NORMAL
    routing: RoutingKey = Field(default_factory=RoutingKey)
    timestamp: str | None = Field(
        default=None, description="ISO-8601 timestamp; set by the coordinator when missing"
    )
    correlation_id: str | None = None
    reply_to: AgentId | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    expires_at: datetime | None = Field(
        default=None, description="after this instant the message is dead-lettered, not delivered"
    )

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware (use datetime.now(UTC) + ...)")
        if value is not None and value <= _EPOCH:
            # Stored as milliseconds since the epoch, where 0 or less means "never expires".
            raise ValueError(
                f"expires_at must be after 1970-01-01T00:00:00Z, got {value.isoformat()}; "
                "leave it None for a message that never expires"
            )
        return value

    def stamped(self) -> Self:
        """Return a copy with ``timestamp`` set to now when it is missing."""
        if self.timestamp is not None:
            return self
        return self.model_copy(update={"timestamp": datetime.now(UTC).isoformat()})


class SendStatus(StrEnum):
    """What became of one sent message (``MessageResult.status``).

    ``ENQUEUED`` and ``DUPLICATE`` are delivered. ``REFUSED`` and ``UNAVAILABLE`` were not
    sent: the message is not in the queue. ``UNKNOWN`` may or may not be in the queue: an
    attempt failed after its command may have reached Redis (a timeout, a dropped
    connection), or the store could not record it. Send an ``UNKNOWN`` message again
    with the **same** ``message_id``: the queue's dedupe makes that safe (it reports
    ``DUPLICATE`` if the first attempt was applied), while a new id would enqueue it twice.
    """

    ENQUEUED = "enqueued"
    """In the recipient's queue now."""
    DUPLICATE = "duplicate"
    """Its id was already in the queue, or settled within the dedupe window: not added."""
    REFUSED = "refused"
    """Redis answered and did not add it: the queue is full, Redis is out of memory."""
    UNAVAILABLE = "unavailable"
    """Not sent: the breaker is open or Redis could not be reached before any command."""
    UNKNOWN = "unknown"
    """Maybe enqueued: send it again with the same ``message_id``."""


_DELIVERED_STATUSES = frozenset({SendStatus.ENQUEUED, SendStatus.DUPLICATE})


class MessageResult(BaseModel):
    """The outcome of sending one message to one recipient.

    ``delivered`` is True when the message is in the recipient's queue (or already was:
    then ``duplicate`` is True). A refusal such as ``error="queue full"`` is a result, not
    an exception. ``status`` says more (:class:`SendStatus`): when ``delivered`` is
    False, ``REFUSED``/``UNAVAILABLE`` mean the message is not in the queue, ``UNKNOWN``
    that it may be: send it again with the same ``message_id`` (never a new one).
    A result built without ``status`` gets it from ``delivered`` and ``duplicate``.
    """

    message_id: str
    delivered: bool
    error: str | None = None
    recipient: AgentId | None = None
    duplicate: bool = False
    status: SendStatus = SendStatus.ENQUEUED
    scheduled_for: datetime | None = None
    """When a delayed send (``delay_s`` or ``not_before``) becomes receivable, by the
    Redis server's clock; None when it was ready at once, and for a duplicate or a
    refusal. Until then it waits in the queue's delayed set (``cancel_scheduled``)."""

    @model_validator(mode="before")
    @classmethod
    def _derive_status(cls, data: Any) -> Any:
        # Results built before ``status`` existed (other backends, tests) name only
        # ``delivered``/``duplicate``: derive it, a not-delivered one as refused.
        if not isinstance(data, dict):
            return data
        fields = cast("dict[str, Any]", data)
        if fields.get("status") is not None:
            return fields
        if not fields.get("delivered"):
            status = SendStatus.REFUSED
        elif fields.get("duplicate"):
            status = SendStatus.DUPLICATE
        else:
            status = SendStatus.ENQUEUED
        return {**fields, "status": status}

    @model_validator(mode="after")
    def _check_status(self) -> Self:
        if self.delivered != (self.status in _DELIVERED_STATUSES):
            raise ValueError(f"delivered={self.delivered} contradicts status={self.status.value!r}")
        return self


class MessageSubscription(BaseModel):
    """An agent's subscription to events of some message types."""

    subscription_id: str
    agent_id: AgentId
    message_types: list[MessageType] = Field(default_factory=list[MessageType])


class QueueMessage(BaseModel):
    """A message as it sits in a queue, with its delivery bookkeeping."""

    message: AgentMessage
    priority: MessagePriority = MessagePriority.NORMAL
    enqueued_at: str | None = None
    delivery_attempts: int = 0
    last_error: str | None = None


class ReceivedMessage(BaseModel):
    """A reserved message: settle it with ``ack``/``nack`` using ``token`` before the deadline.

    ``queue_message.delivery_attempts`` counts this delivery (1 on the first). ``queue``
    is the queue it was leased from: the receiving agent's own, or its type queue (a
    type-wide ``AgentId``) when it was received with ``also=``; settle it there
    (``ack(received.queue, received.token)``). None from a back-end that does not say.
    """

    token: str
    queue_message: QueueMessage
    visibility_deadline: str | None = None
    queue: AgentId | None = None

    @property
    def message(self) -> AgentMessage:
        """The reserved message itself."""
        return self.queue_message.message

    @property
    def attempts(self) -> int:
        """How many times this message has been delivered, this delivery included."""
        return self.queue_message.delivery_attempts


class QueueStats(BaseModel):
    """A consistent snapshot of one agent's queue."""

    agent_id: AgentId
    ready: dict[MessagePriority, int]
    leased: int
    delayed: int
    dead: int
    oldest_ready_at: dict[MessagePriority, datetime | None] | None = None
    """Per priority, when the oldest ready message entered its ready stream (sent, or
    requeued for another delivery), on the Redis server clock; None for a priority with
    nothing ready. None as a whole from a back-end that does not report it."""

    @property
    def unsettled(self) -> int:
        """Messages that count against the queue size: ready, leased and delayed."""
        return sum(self.ready.values()) + self.leased + self.delayed


class DeadLetter(BaseModel):
    """A message that will not be delivered again unless replayed.

    ``failure_type`` is PERMANENT for a permanent nack, TIMEOUT for a lease that expired on
    the last allowed delivery or a message past ``expires_at``, TRANSIENT when retries ran
    out.
    """

    dead_letter_id: str
    message: AgentMessage
    priority: MessagePriority
    attempts: int
    last_error: str | None
    failure_type: FailureType
    dead_at: datetime

    @property
    def message_id(self) -> str:
        """The dead message's id (also on :class:`UndecodableDeadLetter`, when it has one)."""
        return self.message.message_id


class UndecodableDeadLetter(BaseModel):
    """A dead letter that is not a deliverable message, shown by its raw fields.

    Either its stored entry was malformed when it was found (``failure_type``
    ``"malformed"``: written by another client, a bug or another version), or the
    dead-letter entry itself cannot be decoded. It is listed with the other dead letters so
    that nothing is invisible, cannot be replayed (the replay keeps it), and is removed by
    a purge. ``fields`` holds the dead-letter entry as stored (``r``: the original entry's
    fields as a JSON object, ``o``: its stream entry id, ``e``: the reason).
    """

    dead_letter_id: str
    fields: dict[str, str]
    reason: str
    """Why it is not a deliverable message."""
    message_id: str | None = None
    failure_type: str | None = None
    last_error: str | None = None
    dead_at: datetime | None = None
