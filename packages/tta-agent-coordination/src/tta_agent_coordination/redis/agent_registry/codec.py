"""Conversions between the registry's models and what its scripts store and return.

Pure functions (no Redis calls): validation of what a caller registers (capabilities,
status, JSON with a size limit), agent records from their stored hash, and events from
the stream. Formats are described in ``docs/registry.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, cast

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_json

from tta_agent_coordination.agents import (
    AgentCapability,
    AgentRecord,
    RegistryEvent,
    RegistryEventKind,
)
from tta_agent_coordination.errors import RegistrationValidationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.codec import text

__all__ = [
    "capabilities_of",
    "decode_events",
    "decode_record",
    "dump_json",
    "ms_to_datetime",
    "normalise_capabilities",
    "normalise_status",
    "snapshot_parts",
]

_MAX_STATUS_LEN = 64
_TIME_FIELDS = frozenset({"last_heartbeat", "expired_at"})


def ms_to_datetime(ms: Any) -> datetime | None:
    """A UTC datetime from milliseconds since the epoch; None for an empty value."""
    raw = text(ms) if ms is not None else ""
    if not raw:
        return None
    try:
        return datetime.fromtimestamp(float(raw) / 1000, tz=UTC)
    except ValueError:
        return None


def dump_json(value: Any, what: str, limit: int | None = None) -> str:
    """``value`` as compact JSON (pydantic's encoder: models, datetimes, enums work).

    Raises:
        RegistrationValidationError: the value cannot be serialised, or is over ``limit``
            bytes.
    """
    try:
        data = to_json(value)
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise RegistrationValidationError(f"{what} is not JSON-serialisable: {exc}") from None
    if limit is not None and len(data) > limit:
        raise RegistrationValidationError(
            f"{what} serialises to {len(data)} bytes, over the limit of {limit} bytes"
        )
    return data.decode("utf-8")


def normalise_status(status: Any) -> str:
    """A status as a non-empty string of at most 64 characters (an enum gives its value).

    Raises:
        RegistrationValidationError: the status is empty, too long or not a string.
    """
    if isinstance(status, Enum):
        status = status.value
    if not isinstance(status, str) or not status or len(status) > _MAX_STATUS_LEN:
        raise RegistrationValidationError(
            f"invalid status {status!r}: use a non-empty string of at most "
            f"{_MAX_STATUS_LEN} characters"
        )
    return status


def _capability_from_object(value: Any) -> AgentCapability:
    # A capability model of another library (such as TTA's): keep the fields we know.
    fields: dict[str, Any] = {}
    for name in ("name", "version", "type", "description"):
        attr = getattr(value, name, None)
        if attr is not None:
            fields[name] = attr.value if isinstance(attr, Enum) else attr
    if "name" not in fields:
        raise RegistrationValidationError(
            f"invalid capability {value!r}: expected an AgentCapability, a name, or a "
            "mapping with name/version/type"
        )
    try:
        return AgentCapability.model_validate(fields)
    except ValidationError as exc:
        raise RegistrationValidationError(f"invalid capability {value!r}: {exc}") from None


def normalise_capabilities(values: Iterable[Any] | None) -> tuple[AgentCapability, ...]:
    """Capabilities from capabilities, names, mappings or other capability objects.

    Raises:
        RegistrationValidationError: a capability is invalid, or two share a name.
    """
    if values is None:
        return ()
    if isinstance(values, str | Mapping | AgentCapability):
        values = [values]
    result: dict[str, AgentCapability] = {}
    for value in values:
        if isinstance(value, AgentCapability | str | Mapping | Enum):
            capability = AgentCapability.parse(value)
        else:
            capability = _capability_from_object(value)
        previous = result.get(capability.name)
        if previous is not None and previous != capability:
            raise RegistrationValidationError(
                f"capability {capability.name!r} is given twice with different details"
            )
        result[capability.name] = capability
    return tuple(result.values())


def capabilities_of(agent: Any) -> tuple[AgentCapability, ...]:
    """The capabilities an agent object advertises (its ``capabilities``, if any).

    ``capabilities`` may be an attribute or a method returning an iterable.
    """
    raw = getattr(agent, "capabilities", None)
    if callable(raw):
        raw = raw()
    if raw is None:
        return ()
    if not isinstance(raw, Iterable):
        raise RegistrationValidationError(
            f"agent {agent!r} has capabilities {raw!r}; expected an iterable of capabilities"
        )
    return normalise_capabilities(cast("Iterable[Any]", raw))


def snapshot_parts(value: Any) -> tuple[str | None, dict[str, Any] | None]:
    """Split what ``status_snapshot()`` returned into (status, snapshot mapping).

    A string (or enum) is a status; a mapping (or model) is a snapshot whose ``status``
    item, when present, is the status.
    """
    if value is None:
        return None, None
    if isinstance(value, str | Enum):
        return normalise_status(value), None
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        snapshot = {str(k): v for k, v in cast("Mapping[Any, Any]", value).items()}
        status = snapshot.get("status")
        return (normalise_status(status) if status is not None else None), snapshot
    raise RegistrationValidationError(
        f"status_snapshot() returned {value!r}; return a status string or a mapping"
    )


def _loads(raw: Any, default: Any) -> Any:
    if raw is None:
        return default
    try:
        return json.loads(text(raw))
    except ValueError:
        return default


def decode_record(
    now_ms: float, agent: str, expiry_ms: float | None, fields: Mapping[str, Any]
) -> AgentRecord | None:
    """The record of ``agent`` from its stored hash ``fields`` (None: not an agent id).

    ``expiry_ms`` is its score in the liveness set (None: not in it); it is alive while
    that is after ``now_ms`` (both on the Redis server clock).
    """
    try:
        agent_id = AgentId.parse(agent)
    except ValueError:
        return None
    alive = expiry_ms is not None and expiry_ms > now_ms
    caps: list[AgentCapability] = []
    for item in _loads(fields.get("caps"), []):
        try:
            caps.append(AgentCapability.model_validate(item))
        except ValidationError:
            continue
    metadata: Any = _loads(fields.get("meta"), {})
    snapshot: Any = _loads(fields.get("snap"), {})
    registered_at = ms_to_datetime(fields.get("reg")) or datetime.fromtimestamp(0, tz=UTC)
    return AgentRecord(
        agent_id=agent_id,
        name=text(fields.get("name", agent_id.type)),
        alive=alive,
        status=text(fields.get("status", "")),
        capabilities=caps,
        metadata=cast("dict[str, Any]", metadata) if isinstance(metadata, dict) else {},
        snapshot=cast("dict[str, Any]", snapshot) if isinstance(snapshot, dict) else {},
        registered_at=registered_at,
        last_heartbeat=ms_to_datetime(fields.get("hb")),
        expires_at=ms_to_datetime(fields.get("exp")),
    )


def _stream_entries(response: Any) -> list[tuple[Any, Any]]:
    # XREAD: [[stream, entries]] (RESP2) or {stream: [entries]} (RESP3).
    if not response:
        return []
    if isinstance(response, Mapping):
        values: list[Any] = list(cast("Mapping[Any, Any]", response).values())
        entries: list[Any] = list(values[0]) if values else []
        if entries and isinstance(entries[0], list):
            inner = cast("list[Any]", entries[0])
            if inner and isinstance(inner[0], list | tuple):
                entries = inner
        return entries
    first = cast("list[Any]", response)[0]
    return list(first[1]) if first else []


def _event(entry_id: str, raw_fields: Any) -> RegistryEvent | None:
    if isinstance(raw_fields, Mapping):
        pairs = cast("Mapping[Any, Any]", raw_fields).items()
        fields = {text(k): text(v) for k, v in pairs}
    else:
        flat = list(cast("Iterable[Any]", raw_fields))
        fields = {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
    try:
        kind = RegistryEventKind(fields.pop("k"))
        agent_id = AgentId.parse(fields.pop("a"))
        at = ms_to_datetime(fields.pop("t"))
    except (KeyError, ValueError):
        return None
    if at is None:
        return None
    data: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _TIME_FIELDS:
            moment = ms_to_datetime(value)
            data[key] = moment.isoformat() if moment is not None else None
        elif key == "was_alive":
            data[key] = value == "1"
        else:
            data[key] = value
    return RegistryEvent(id=entry_id, kind=kind, agent_id=agent_id, at=at, data=data)


def decode_events(response: Any) -> list[tuple[str, RegistryEvent | None]]:
    """Events from an XREAD response, with the entry id of each (None: not one of ours)."""
    decoded: list[tuple[str, RegistryEvent | None]] = []
    for entry in _stream_entries(response):
        entry_id = text(entry[0])
        decoded.append((entry_id, _event(entry_id, entry[1])))
    return decoded
