"""Encoding conversation messages: payload checks, queue envelopes, inbox entries."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from tta_agent_coordination.interactions.errors import PayloadError
from tta_agent_coordination.interactions.models import ConversationMessage

__all__ = [
    "ENVELOPE_KIND",
    "decode_inbox_entry",
    "dump_message",
    "jsonable_payload",
    "load_message",
    "ms_to_datetime",
]

ENVELOPE_KIND = "tta.conv"
"""The ``kind`` of a queue message carrying a conversation message (the worker's key)."""


def jsonable_payload(payload: Any, max_bytes: int) -> Any:
    """``payload`` as a JSON value (a pydantic model becomes its JSON form).

    Raises:
        PayloadError: not JSON-serialisable, a non-finite number, or over ``max_bytes``
            once encoded.
    """
    value = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"the payload is not JSON: {exc}") from exc
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise PayloadError(f"the payload is {size} bytes encoded, over the {max_bytes} allowed")
    return value


def dump_message(message: ConversationMessage) -> str:
    """The JSON of ``message`` (kept in logs and inboxes)."""
    return message.model_dump_json()


def load_message(raw: str | bytes | Mapping[str, Any]) -> ConversationMessage:
    """A message back from its JSON (or from the dict a queue envelope carries).

    Raises:
        PayloadError: not a conversation message.
    """
    try:
        if isinstance(raw, Mapping):
            return ConversationMessage.model_validate(raw)
        return ConversationMessage.model_validate_json(raw)
    except ValidationError as exc:
        raise PayloadError(f"not a conversation message: {exc}") from exc


def ms_to_datetime(ms: int) -> datetime:
    """An aware datetime from milliseconds since the epoch."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def decode_inbox_entry(raw: str) -> ConversationMessage:
    """An inbox entry (``"<arrival ms>|<sender>|<json>"``) as a message timed on arrival.

    Raises:
        PayloadError: the entry is damaged.
    """
    ms, _, rest = raw.partition("|")
    _, _, body = rest.partition("|")
    if not ms.isdigit() or not math.isfinite(float(ms)):
        raise PayloadError(f"damaged inbox entry {raw[:80]!r}")
    message = load_message(body)
    return message.model_copy(update={"sent_at": ms_to_datetime(int(ms))})
