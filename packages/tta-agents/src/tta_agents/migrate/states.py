"""Saved agent state: the original registry records' ``state``, seeded into the new registry.

The original registry kept an agent's exported state in its record
(``{prefix}:agents:{type}:{instance}``, JSON with a ``state`` field). The core registry keeps
it apart and hands it to the agent's ``import_state`` hook at its next registration;
``RedisAgentRegistry.seed_state`` stores one for an agent that is not registered now. The
legacy records stay where they are (the original deployment is stopped, not erased).
Seeding never replaces a state already there, so a second run changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol, cast

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import AgentAlreadyRegisteredError, RegistrationValidationError
from tta_agent_coordination.models import AgentId
from tta_agents.legacy_keys import LegacyKeys
from tta_agents.migrate.entries import Unmovable, as_text, scan_keys, to_agent_id

__all__ = ["StateSeeder", "StatesMigration", "migrate_states"]


class StateSeeder(Protocol):
    """Where saved states go: ``RedisAgentRegistry`` (its ``seed_state``)."""

    async def seed_state(self, agent_id: AgentId, state: Any, *, replace: bool = False) -> bool:
        """Store ``state`` for ``agent_id``'s next registration; whether it was stored."""
        ...


class StatesMigration:
    """What the state step did: seeded, kept (a state was there), and left in place."""

    def __init__(self) -> None:
        self.seeded = 0
        self.kept = 0
        self.unmovable: list[Unmovable] = []


async def migrate_states(
    redis: RedisClient,
    seeder: StateSeeder,
    keys: LegacyKeys,
    *,
    renames: Mapping[str, AgentId],
    dry_run: bool,
) -> StatesMigration:
    """Seed every legacy record's saved ``state`` into ``seeder`` (see the module doc)."""
    done = StatesMigration()
    for key in await scan_keys(redis, keys.pattern("agents")):
        agent = keys.parse_agent_key(key, "agents")
        agent_id = to_agent_id(agent, renames) if agent is not None else None
        raw: bytes | str | None = await redis.get(key)
        state = _state_of(raw)
        if state is None:
            continue  # no saved state (or not a record: legacy_report lists those)
        if agent_id is None:
            done.unmovable.append(Unmovable(key=key, reason="not a valid core AgentId"))
            continue
        if dry_run:
            done.seeded += 1
            continue
        try:
            if await seeder.seed_state(agent_id, state):
                done.seeded += 1
            else:
                done.kept += 1
        except AgentAlreadyRegisteredError:
            reason = f"{agent_id} is registered and live: its own heartbeats keep its state"
            done.unmovable.append(Unmovable(key=key, reason=reason))
        except RegistrationValidationError as exc:  # too large, not JSON-serialisable
            done.unmovable.append(Unmovable(key=key, reason=f"state refused: {exc}"))
    return done


def _state_of(raw: bytes | str | None) -> Any:
    if raw is None:
        return None
    try:
        record: Any = json.loads(as_text(raw))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict):
        return None
    state = cast("dict[str, Any]", record).get("state")
    return state or None
