"""Reading registrations: ``get``, ``list_registered`` and ``discover``.

The ids come from the caller, the liveness set or the type/capability indexes; their
records are then read by ``registry_read``, which gets each agent hash in KEYS and judges
liveness on the server clock. See ``docs/registry.md`` (Liveness, Discovery).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from typing import Any

from tta_agent_coordination.agents import AgentRecord, CapabilityType
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry.codec import decode_record
from tta_agent_coordination.redis.agent_registry.core import RegistryCore
from tta_agent_coordination.redis.agent_registry.scripts import ReadResult, parse_read, read_call
from tta_agent_coordination.redis.codec import text

__all__ = ["Reads", "decode_records", "records_of"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def records_of(result: ReadResult) -> list[AgentRecord]:
    """The agent records of a ``registry_read`` result (ids that do not parse are left out)."""
    records: list[AgentRecord] = []
    for row in result.rows:
        record = decode_record(result.now_ms, row.agent, row.expiry_ms, row.fields)
        if record is not None:
            records.append(record)
    return records


def decode_records(result: Any) -> list[AgentRecord]:
    """Records from what ``registry_read`` returned, as it returned it."""
    return records_of(parse_read(result))


def _query_name(kind: str, value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise ConfigurationError(
            f"invalid {kind} {value!r}: use 1-128 characters from letters, digits, '_', '.', "
            "'-', starting with a letter or digit"
        )
    return value


def _agent_ids(members: Sequence[Any]) -> list[AgentId]:
    # Members are written as str(AgentId) of a concrete agent ("type:instance"); anything
    # else (a bare type, which would parse as a type-wide id) names no record to read.
    ids: list[AgentId] = []
    for member in members:
        raw = text(member)
        try:
            agent_id = AgentId.parse(raw)
        except ValueError:
            continue
        if str(agent_id) == raw and not agent_id.is_type_wide:
            ids.append(agent_id)
    return ids


class Reads:
    """Reads records: by id, every registration, or by type and capability."""

    def __init__(self, core: RegistryCore) -> None:
        self._core = core

    async def get(self, agent_id: AgentId) -> AgentRecord | None:
        """The record of ``agent_id``, or None when it is not registered."""
        records = await self._read([agent_id], alive_only=False, listed_only=False)
        return records[0] if records else None

    async def list_registered(self) -> list[AgentRecord]:
        """Every registration in the liveness set, sorted by id."""
        liveness = self._core.keys.registry_liveness
        members = await self._members(lambda: self._core.redis.zrange(liveness, 0, -1))
        records = await self._read(members, alive_only=False, listed_only=True)
        return sorted(records, key=lambda r: str(r.agent_id))

    async def discover(
        self,
        type: str | None = None,
        capability: str | None = None,
        alive_only: bool = True,
        *,
        capability_type: CapabilityType | str | None = None,
    ) -> list[AgentRecord]:
        """Registrations of an agent ``type`` and/or advertising ``capability``, by id.

        Raises:
            ConfigurationError: ``type`` or ``capability`` is not a valid name, or
                ``capability_type`` is not a :class:`CapabilityType`.
        """
        keys = self._core.keys
        sets: list[str] = []
        if type is not None:
            sets.append(keys.registry_type(_query_name("type", type)))
        if capability is not None:
            sets.append(keys.registry_capability(_query_name("capability", capability)))
        wanted_type: CapabilityType | None = None
        if capability_type is not None:
            try:
                wanted_type = CapabilityType(capability_type)
            except ValueError:
                raise ConfigurationError(
                    f"unknown capability type {capability_type!r}; use one of "
                    f"{', '.join(t.value for t in CapabilityType)}"
                ) from None
        redis = self._core.redis
        if len(sets) == 1:
            members = await self._members(lambda: redis.smembers(sets[0]))
        elif sets:
            members = await self._members(lambda: redis.sinter(sets))
        else:
            members = await self._members(lambda: redis.zrange(keys.registry_liveness, 0, -1))
        records = await self._read(members, alive_only=alive_only, listed_only=not sets)
        if wanted_type is not None:
            records = [
                r
                for r in records
                if any(
                    c.type == wanted_type and (capability is None or c.name == capability)
                    for c in r.capabilities
                )
            ]
        return sorted(records, key=lambda r: str(r.agent_id))

    async def _members(self, read: Callable[[], Awaitable[Any]]) -> list[AgentId]:
        return _agent_ids(list(await self._core.call("registry_read", read, retry=True)))

    async def _read(
        self, agent_ids: Sequence[AgentId], *, alive_only: bool, listed_only: bool
    ) -> list[AgentRecord]:
        if not agent_ids:
            return []
        call = read_call(self._core.keys, agent_ids, alive_only=alive_only, listed_only=listed_only)
        return records_of(parse_read(await self._core.run(call)))
