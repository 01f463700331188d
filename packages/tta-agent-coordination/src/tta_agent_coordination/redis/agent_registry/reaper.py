"""Failure detection: expiring registrations whose liveness passed, and hand-over.

A reaper pass finds the due ids (``registry_due``), reads their capability names, and
expires them in one script that gets every key it touches (``registry_reap``). The
leased messages of a failed agent are handed back to its queue through a
:class:`~tta_agent_coordination.redis.agent_registry.core.LeaseReleaser`. See
``docs/registry.md`` (Liveness, expiry and failure detection).
"""

from __future__ import annotations

from typing import Any

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry.core import LeaseReleaser, RegistryCore
from tta_agent_coordination.redis.agent_registry.scripts import (
    due_call,
    parse_due,
    parse_reap,
    reap_call,
)
from tta_agent_coordination.redis.codec import text

__all__ = ["Reaper", "hand_over"]


async def hand_over(
    core: RegistryCore, target: LeaseReleaser, agent_id: AgentId, *, reason: str
) -> int | None:
    """Return ``agent_id``'s leased messages to its queue; how many (None: it failed).

    A failure is logged, not raised: those messages come back anyway when their
    visibility timeouts pass.
    """
    try:
        count = await target.release_leases(agent_id)
    except Exception as exc:
        core.log.error("lease_release_failed", agent=str(agent_id), reason=reason, error=repr(exc))
        return None
    core.log.info("leases_released", agent=str(agent_id), reason=reason, count=count)
    return count


def _as_agent_id(member: str) -> AgentId | None:
    # Only a member written as str(AgentId) names keys the reaper can pass in KEYS.
    try:
        agent_id = AgentId.parse(member)
    except ValueError:
        return None
    # Registrations are concrete: a bare type (a type-wide id) is a stray too.
    return agent_id if str(agent_id) == member and not agent_id.is_type_wide else None


class Reaper:
    """Expires registrations whose liveness passed; hands their messages over."""

    def __init__(self, core: RegistryCore) -> None:
        self._core = core

    async def reap_expired(self) -> list[AgentId]:
        """Expire every registration whose liveness passed; the ids expired by this call."""
        expired: list[AgentId] = []
        while True:
            batch, more = await self._reap_batch()
            expired += batch
            if not more:
                break
        if expired:
            self._core.log.warning("registrations_expired", agents=[str(a) for a in expired])
        return expired

    async def _reap_batch(self) -> tuple[list[AgentId], bool]:
        core = self._core
        limit = core.config.reap_batch
        due = parse_due(await core.run(due_call(core.keys, limit)))
        if not due:
            return [], False
        candidates: list[AgentId] = []
        strays: list[str] = []
        for member in due:
            agent_id = _as_agent_id(member)
            if agent_id is None:
                strays.append(member)
            else:
                candidates.append(agent_id)
        names = await self._capability_names(candidates)
        result = parse_reap(
            await core.run(
                reap_call(
                    core.keys,
                    list(zip(candidates, names, strict=True)),
                    retention_ms=core.config.retention_ms,
                    events_max_len=core.config.events_limit,
                    strays=strays,
                )
            )
        )
        return list(result.expired), len(due) >= limit or result.skipped

    async def _capability_names(self, agent_ids: list[AgentId]) -> list[list[str]]:
        """The capability names of each agent's record, read in one pipeline."""
        if not agent_ids:
            return []
        core = self._core

        async def read() -> list[Any]:
            pipe = core.redis.pipeline(transaction=False)
            for agent_id in agent_ids:
                pipe.hget(core.keys.registry_agent(agent_id), "capn")
            return await pipe.execute()

        values = await core.call("registry_reap", read, retry=True)
        return [text(v).split() if v is not None else [] for v in values]

    async def recover_failed(self, coordinator: LeaseReleaser | None = None) -> dict[AgentId, int]:
        """Reap expired registrations and hand their leased messages back to their queues.

        Raises:
            ConfigurationError: no coordinator is given here or to the registry.
        """
        target = coordinator if coordinator is not None else self._core.coordinator
        if target is None:
            raise ConfigurationError(
                "recover_failed needs a coordinator: pass one here or to the registry"
            )
        released: dict[AgentId, int] = {}
        for agent_id in await self.reap_expired():
            count = await hand_over(self._core, target, agent_id, reason="expired")
            if count is not None:
                released[agent_id] = count
        return released
