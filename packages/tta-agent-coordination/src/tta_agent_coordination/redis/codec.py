"""Conversions between the models and what the Lua scripts store and return.

The scripts' arguments and outcomes are declared beside them (``redis/scripts/*.py``);
this module turns stored entries (envelopes, deliveries, dead letters) into models.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from tta_agent_coordination.errors import NonFiniteNumberError, PayloadTooDeepError
from tta_agent_coordination.models import (
    AgentId,
    AgentMessage,
    DeadLetter,
    FailureType,
    MessagePriority,
    QueueMessage,
    ReceivedMessage,
    RoutingKey,
    UndecodableDeadLetter,
)
from tta_agent_coordination.redis.keys import PRIORITIES_HIGH_FIRST

__all__ = [
    "MAX_PAYLOAD_DEPTH",
    "DecodeError",
    "assemble_model",
    "check_payload",
    "decode_dead_letter",
    "decode_delivery",
    "envelope_json",
    "ms_to_iso",
    "priority_index",
    "raw_entry_fields",
    "stamped_envelope_json",
    "text",
    "to_ms",
]


class DecodeError(Exception):
    """A stored entry could not be decoded into a model (written by something else)."""

    def __init__(self, token: str, reason: str) -> None:
        self.token = token
        super().__init__(reason)


def text(value: Any) -> str:
    """A reply item as ``str``, whether the client decodes responses or not."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


_DEFAULT_ROUTING = RoutingKey()


MAX_PAYLOAD_DEPTH = 100
"""How deep a payload may nest: dicts and lists, the payload itself being level 1.

The one limit, checked when a message is serialised for sending (:func:`check_payload`).
Receivers parse the whole envelope with pydantic's JSON parser, which refuses more than
200 levels; this leaves room for the envelope and for payloads that are models, so every
message sent can be decoded.
"""

_CONTAINERS = (dict, list, tuple, set, frozenset)


def _payload_ok(value: Any, depth: int) -> bool:
    """True when ``value`` (a dict or list at level ``depth``) is within the limit, finite."""
    items: Any = cast(dict[str, Any], value).values() if isinstance(value, dict) else value
    item: Any
    for item in items:
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, _CONTAINERS) and (
            depth >= MAX_PAYLOAD_DEPTH or not _payload_ok(item, depth + 1)
        ):
            return False
    return True


def _payload_fault(message_id: str, value: Any, depth: int, path: str) -> None:
    """Raise the error of the first fault of ``value`` (slow path, only after a fault)."""
    items: Any = (
        cast(dict[str, Any], value).items() if isinstance(value, dict) else enumerate(value)
    )
    key: Any
    item: Any
    for key, item in items:
        here = f"{path}.{key}" if isinstance(value, dict) else f"{path}[{key}]"
        if isinstance(item, float) and not math.isfinite(item):
            raise NonFiniteNumberError(message_id, here, item)
        if isinstance(item, _CONTAINERS):
            if depth >= MAX_PAYLOAD_DEPTH:
                raise PayloadTooDeepError(message_id, MAX_PAYLOAD_DEPTH)
            _payload_fault(message_id, item, depth + 1, here)


def check_payload(message: AgentMessage) -> None:
    """Refuse a payload that a receiver could not decode back into the same message.

    Raises:
        PayloadTooDeepError: it nests deeper than :data:`MAX_PAYLOAD_DEPTH`.
        NonFiniteNumberError: it holds NaN or an infinity (JSON would carry ``null``).
    """
    payload = message.payload
    if payload and not _payload_ok(payload, 1):
        _payload_fault(message.message_id, payload, 1, "payload")


def envelope_json(message: AgentMessage) -> str:
    """The JSON stored for ``message``: fields left at their defaults are omitted.

    Decoding fills them in again, so the message is unchanged; a queued message costs
    ~30% less memory. Cheaper than pydantic's ``exclude_defaults``, which compares
    every field. The payload is checked first (:func:`check_payload`), so what is sent
    can be received.

    Raises:
        PayloadTooDeepError: the payload nests deeper than :data:`MAX_PAYLOAD_DEPTH`.
        NonFiniteNumberError: the payload holds NaN or an infinity.
        pydantic_core.PydanticSerializationError: the payload is not JSON-serialisable.
    """
    check_payload(message)
    exclude: set[str] = set()
    if not message.headers:
        exclude.add("headers")
    if message.routing == _DEFAULT_ROUTING:
        exclude.add("routing")
    if message.priority is MessagePriority.NORMAL:
        exclude.add("priority")
    return message.model_dump_json(exclude_none=True, exclude=exclude)


def stamped_envelope_json(message: AgentMessage) -> str:
    """:func:`envelope_json` of ``message.stamped()``, without copying the message.

    A message without a ``timestamp`` has none in its JSON (``None`` is left out), so the
    send time is appended to the object instead: the same message once decoded, and ~30%
    cheaper than ``model_copy`` on the send path.

    Raises:
        PayloadTooDeepError: the payload nests deeper than :data:`MAX_PAYLOAD_DEPTH`.
        NonFiniteNumberError: the payload holds NaN or an infinity.
        pydantic_core.PydanticSerializationError: the payload is not JSON-serialisable.
    """
    envelope = envelope_json(message)
    if message.timestamp is not None:
        return envelope
    return f'{envelope[:-1]},"timestamp":"{datetime.now(UTC).isoformat()}"}}'


def priority_index(priority: MessagePriority) -> int:
    """The 1-based index of ``priority``'s ready stream in the scripts' KEYS."""
    return PRIORITIES_HIGH_FIRST.index(priority) + 1


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


_iso_cache: dict[int, str] = {}


def ms_to_iso(ms: Any) -> str:
    """An ISO-8601 UTC timestamp from milliseconds since the epoch."""
    value = int(ms)
    iso = _iso_cache.get(value)
    if iso is None:
        # A batch shares its lease deadline and often its enqueue times: remember a few.
        if len(_iso_cache) >= 1024:
            _iso_cache.clear()
        iso = _iso_cache[value] = datetime.fromtimestamp(value / 1000, tz=UTC).isoformat()
    return iso


_M = TypeVar("_M", bound=BaseModel)
_set = object.__setattr__


def assemble_model(cls: type[_M], values: dict[str, Any]) -> _M:
    """``cls.model_construct(**values)`` for a model without defaults left to fill.

    pydantic's ``model_construct`` walks every field to apply defaults and costs ~5 us
    per model; the receive path builds two models per message, and the send path one
    result, from parts that are already valid and complete, so this sets the same four
    attributes directly (~1 us). ``values`` must name every field.
    ``tests/test_codec.py`` pins the result to ``model_construct``'s, state for state, so
    a pydantic release that changes a model's internals fails a test.
    """
    obj = cls.__new__(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", set(values))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


# What decoding a malformed stored item can raise: pydantic's ValidationError is a
# ValueError; a short item, an empty or non-numeric time, an out-of-range time.
_DECODE_ERRORS = (ValueError, TypeError, IndexError, KeyError, OverflowError, OSError)


def decode_delivery(item: Sequence[Any], queue: AgentId | None = None) -> ReceivedMessage:
    """Decode one delivery of the receive script (the layout of ``queue_receive.Delivery``).

    ``queue`` is the queue it was reserved from (``ReceivedMessage.queue``).

    Raises:
        DecodeError: anything in it cannot be decoded (the envelope is not a valid
            ``AgentMessage``, a count or time is not a number, a field is missing).
    """
    try:
        return _decode_delivery(item, queue)
    except _DECODE_ERRORS as exc:
        token = text(item[0]) if len(item) > 0 else ""
        raise DecodeError(token, f"undecodable message envelope: {exc}") from None


def _decode_delivery(item: Sequence[Any], queue: AgentId | None) -> ReceivedMessage:
    raw_token, envelope, deliveries, raw_error, first_enqueued_ms, lease_deadline_ms = item
    token = text(raw_token)
    message = AgentMessage.model_validate_json(envelope)
    last_error = text(raw_error) if raw_error else None
    # Not validated again: the message is validated above and every other field is
    # built here from the script's outcome with its exact type (the receive hot path).
    queue_message = assemble_model(
        QueueMessage,
        {
            "message": message,
            "priority": message.priority,
            "enqueued_at": ms_to_iso(first_enqueued_ms),
            "delivery_attempts": int(deliveries),
            "last_error": last_error or None,
        },
    )
    return assemble_model(
        ReceivedMessage,
        {
            "token": token,
            "queue_message": queue_message,
            "visibility_deadline": ms_to_iso(lease_deadline_ms),
            "queue": queue,
        },
    )


def decode_dead_letter(entry_id: Any, fields: dict[Any, Any]) -> DeadLetter | UndecodableDeadLetter:
    """Decode one dead-letter stream entry.

    A dead letter of a malformed entry (failure ``malformed``), or one that cannot be
    decoded (written by something else, or by another version), is returned as an
    :class:`~tta_agent_coordination.models.UndecodableDeadLetter` with its raw fields:
    every dead letter is listed.
    """
    f = {text(k): text(v) for k, v in fields.items()}
    dead_letter_id = text(entry_id)
    if f.get("f") == FailureType.MALFORMED.value:
        return _undecodable(dead_letter_id, f, f.get("e") or "malformed entry")
    try:
        message = AgentMessage.model_validate_json(f["m"])
        return DeadLetter(
            dead_letter_id=dead_letter_id,
            message=message,
            priority=PRIORITIES_HIGH_FIRST[int(f["p"]) - 1],
            attempts=int(f["a"]),
            last_error=f["e"] or None,
            failure_type=FailureType(f["f"]),
            dead_at=datetime.fromtimestamp(int(f["d"]) / 1000, tz=UTC),
        )
    except _DECODE_ERRORS as exc:
        return _undecodable(dead_letter_id, f, f"undecodable dead letter: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text_ = str(exc) or type(exc).__name__
    return " ".join(text_.split("\n")[:2])


def _undecodable(dead_letter_id: str, f: dict[str, str], reason: str) -> UndecodableDeadLetter:
    dead_at: datetime | None
    try:
        dead_at = datetime.fromtimestamp(int(f["d"]) / 1000, tz=UTC)
    except _DECODE_ERRORS:
        dead_at = None
    return UndecodableDeadLetter(
        dead_letter_id=dead_letter_id,
        fields=f,
        reason=reason,
        message_id=f.get("i") or None,
        failure_type=f.get("f") or None,
        last_error=f.get("e") or None,
        dead_at=dead_at,
    )


def raw_entry_fields(letter: UndecodableDeadLetter) -> dict[str, Any] | None:
    """The original stream entry's fields of a malformed dead letter (its ``r``), if kept."""
    raw = letter.fields.get("r")
    if raw is None:
        return None
    try:
        value: Any = json.loads(raw)
    except ValueError:
        return None
    return cast(dict[str, Any], value) if isinstance(value, dict) else None
