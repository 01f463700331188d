"""Agents as the registry knows them: capabilities, records and registry events.

:class:`AgentCapability` keeps the original's capability model (name, version, type)
trimmed to what the core needs. :class:`AgentRecord` is what ``list_registered()``,
``get()`` and ``discover()`` return; the registration's owner token is never part of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tta_agent_coordination.errors import RegistrationValidationError
from tta_agent_coordination.models import AgentId

__all__ = [
    "AgentCapability",
    "AgentRecord",
    "CapabilityType",
    "RegistryEvent",
    "RegistryEventKind",
]

# Capability names end up in Redis key names: the same alphabet as agent names.
_CAPABILITY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
# A dotted numeric version with an optional pre-release/build suffix: 1, 1.2, 1.2.3-rc.1
_VERSION_RE = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}([-+][0-9A-Za-z.\-]{1,64})?$")


class CapabilityType(StrEnum):
    """What kind of work a capability does (the original's categories)."""

    PROCESSING = "processing"
    GENERATION = "generation"
    ANALYSIS = "analysis"
    COORDINATION = "coordination"
    STORAGE = "storage"
    COMMUNICATION = "communication"


class AgentCapability(BaseModel):
    """One thing an agent can do, advertised in the registry and indexed by ``name``.

    ``name`` uses letters, digits, ``_``, ``.`` and ``-`` (it is part of a Redis key);
    ``version`` is a dotted numeric version such as ``"1.2.0"``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str = "1.0.0"
    type: CapabilityType = CapabilityType.PROCESSING
    description: str | None = Field(default=None, max_length=1_000)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _CAPABILITY_NAME_RE.fullmatch(value):
            raise ValueError(
                f"invalid capability name {value!r}: use 1-128 characters from letters, "
                "digits, '_', '.', '-', starting with a letter or digit"
            )
        return value

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        if not _VERSION_RE.fullmatch(value):
            raise ValueError(
                f"invalid capability version {value!r}: use a dotted numeric version such "
                "as '1', '1.2' or '1.2.3', optionally with a '-suffix'"
            )
        return value

    @classmethod
    def parse(cls, value: Any) -> AgentCapability:
        """An ``AgentCapability`` from a capability, a name, or a mapping of its fields.

        Raises:
            RegistrationValidationError: the value is not a valid capability.
        """
        if isinstance(value, AgentCapability):
            return value
        try:
            if isinstance(value, Enum):
                value = value.value
            if isinstance(value, str):
                return cls(name=value)
            if isinstance(value, Mapping):
                return cls.model_validate(dict(value))  # pyright: ignore[reportUnknownArgumentType]
            if isinstance(value, BaseModel):
                return cls.model_validate(value.model_dump())
        except ValidationError as exc:
            raise RegistrationValidationError(f"invalid capability {value!r}: {exc}") from None
        raise RegistrationValidationError(
            f"invalid capability {value!r}: expected an AgentCapability, a name, or a mapping "
            "with name/version/type"
        )


class AgentRecord(BaseModel):
    """What the registry knows about one agent.

    ``alive`` is True while the registration's liveness expiry (on the Redis server
    clock) is in the future; an expired registration reads ``alive=False`` even before
    a reaper has processed it. ``snapshot`` is the last mapping returned by the agent's
    ``status_snapshot()`` hook. For code written against the original API, which
    returned dicts, ``record["name"]`` works too.
    """

    model_config = ConfigDict(frozen=True)

    agent_id: AgentId
    name: str
    alive: bool
    status: str
    capabilities: list[AgentCapability] = Field(default_factory=list[AgentCapability])
    metadata: dict[str, Any] = Field(default_factory=dict[str, Any])
    snapshot: dict[str, Any] = Field(default_factory=dict[str, Any])
    registered_at: datetime
    last_heartbeat: datetime | None = None
    expires_at: datetime | None = None

    def __getitem__(self, key: str) -> Any:
        """Dict-style access to a field (``record["alive"]``), as the original returned dicts.

        ``"type"`` and ``"instance"`` give the parts of ``agent_id``.
        """
        if key == "type":
            return self.agent_id.type
        if key == "instance":
            return self.agent_id.instance
        if key in type(self).model_fields:
            return getattr(self, key)
        raise KeyError(key)

    def has_capability(self, name: str) -> bool:
        """Whether the agent advertises a capability called ``name``."""
        return any(c.name == name for c in self.capabilities)


class RegistryEventKind(StrEnum):
    """What happened to a registration."""

    REGISTERED = "registered"
    """A registration was written (``data``: ``name``, ``status``, ``replaced``)."""
    DEREGISTERED = "deregistered"
    """A registration was removed by its owner or evicted (``data``: ``reason``)."""
    EXPIRED = "expired"
    """A registration's liveness ran out (``data``: ``last_heartbeat``, ``expired_at``)."""
    STATUS_CHANGED = "status_changed"
    """The status really changed (``data``: ``old``, ``new``)."""
    REPLACED = "replaced"
    """A live registration was taken over by another owner (``takeover=True``)."""


class RegistryEvent(BaseModel):
    """One entry of the registry's bounded event stream.

    ``id`` is the stream entry id: pass it as ``since`` to read only later events.
    ``data`` values are strings as stored, except times, which are ISO-8601.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    kind: RegistryEventKind
    agent_id: AgentId
    at: datetime
    data: dict[str, Any] = Field(default_factory=dict[str, Any])
