"""The agent directory: organizations (namespaces) and the agents registered in them.

Kept in Redis under the ``{_dir}`` hash tag (``interactions/keys.py``); registering an
agent is one script, so an agent is always in exactly one organization's member set.
An agent may address another of its own organization, or of an organization whose
``accepts_from`` lists the sender's organization.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import ConfigurationError, CoordinatorUnavailableError
from tta_agent_coordination.interactions.codec import ms_to_datetime
from tta_agent_coordination.interactions.errors import (
    AgentNotFoundError,
    CrossOrganizationError,
    OrganizationNotFoundError,
)
from tta_agent_coordination.interactions.keys import InteractionKeys, check_organization_id
from tta_agent_coordination.interactions.lua import InteractionScripts, as_str, guarded
from tta_agent_coordination.interactions.models import AgentProfile, Organization
from tta_agent_coordination.models import AgentId

__all__ = ["Directory"]

_MOVE_ATTEMPTS = 10
"""Re-reads of an agent's organization when concurrent registrations keep moving it."""


def _fields(raw: Any) -> dict[str, str]:
    items = cast(dict[Any, Any], raw or {})
    return {as_str(k): as_str(v) for k, v in items.items()}


def _created(fields: dict[str, str]) -> Any:
    value = fields.get("created_ms")
    return ms_to_datetime(int(value)) if value and value.isdigit() else None


class Directory:
    """Organizations and agents, shared by every process on the same Redis and prefix."""

    def __init__(self, redis: RedisClient, keys: InteractionKeys, scripts: InteractionScripts):
        self._redis = redis
        self._keys = keys
        self._scripts = scripts

    async def register_organization(
        self, org_id: str, name: str | None = None, *, accepts_from: Sequence[str] = ()
    ) -> Organization:
        """Register (or update) an organization; returns it as stored.

        Raises:
            ConfigurationError: an invalid id (also in ``accepts_from``).
        """
        check_organization_id(org_id)
        allowed = tuple(check_organization_id(o) for o in accepts_from)
        await self._scripts.run(
            "dir_org",
            [self._keys.organization(org_id), self._keys.organizations],
            [org_id, name or org_id, json.dumps(list(allowed))],
        )
        return await self.get_organization(org_id)

    async def get_organization(self, org_id: str) -> Organization:
        """One organization.

        Raises:
            OrganizationNotFoundError: it is not registered.
        """
        check_organization_id(org_id)
        key = self._keys.organization(org_id)
        fields = _fields(await guarded("get_organization", lambda: self._redis.hgetall(key)))
        if not fields:
            raise OrganizationNotFoundError(org_id)
        return Organization(
            org_id=org_id,
            name=fields.get("name", org_id),
            accepts_from=tuple(json.loads(fields.get("accepts_from", "[]"))),
            created_at=_created(fields),
        )

    async def list_organizations(self) -> list[str]:
        """Every organization id, sorted."""
        members = await guarded(
            "list_organizations", lambda: self._redis.smembers(self._keys.organizations)
        )
        return sorted(as_str(m) for m in cast(set[Any], members))

    async def register_agent(
        self, agent_id: AgentId, *, organization: str, name: str | None = None
    ) -> AgentProfile:
        """Register ``agent_id`` in ``organization`` (moving it from another one).

        Raises:
            OrganizationNotFoundError: the organization is not registered.
            ConfigurationError: ``agent_id`` is not an ``AgentId``.
        """
        if not isinstance(agent_id, AgentId):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigurationError(f"agent_id must be an AgentId, got {agent_id!r}")
        check_organization_id(organization)
        key = self._keys.agent(agent_id)
        members = self._keys.organization_agents(organization)
        for _ in range(_MOVE_ATTEMPTS):
            # The script must declare the old organization's set: read it first, and
            # let the script check it is still the current one (else read again).
            raw = await guarded("register_agent", lambda: self._redis.hget(key, "organization"))
            current = as_str(raw) if raw is not None else ""
            old_members = self._keys.organization_agents(current) if current else members
            outcome = as_str(
                await self._scripts.run(
                    "dir_agent",
                    [self._keys.organization(organization), members, key, old_members],
                    [str(agent_id), organization, name or str(agent_id), current],
                )
            )
            if outcome == "no_org":
                raise OrganizationNotFoundError(organization)
            if outcome != "moved":
                return await self.get_agent(agent_id)
        raise CoordinatorUnavailableError(
            f"register_agent: {agent_id} kept moving between organizations; try again"
        )

    async def get_agent(self, agent_id: AgentId) -> AgentProfile:
        """One agent's entry.

        Raises:
            AgentNotFoundError: it is not registered.
        """
        key = self._keys.agent(agent_id)
        fields = _fields(await guarded("get_agent", lambda: self._redis.hgetall(key)))
        if not fields:
            raise AgentNotFoundError(str(agent_id))
        return AgentProfile(
            agent_id=agent_id,
            organization=fields["organization"],
            name=fields.get("name", str(agent_id)),
            created_at=_created(fields),
        )

    async def list_agents(self, organization: str) -> list[AgentId]:
        """The agents of one organization, sorted.

        Raises:
            OrganizationNotFoundError: it is not registered.
        """
        await self.get_organization(organization)
        key = self._keys.organization_agents(organization)
        members = await guarded("list_agents", lambda: self._redis.smembers(key))
        return sorted((AgentId.parse(as_str(m)) for m in cast(set[Any], members)), key=str)

    async def check_route(self, sender: AgentId, recipients: Sequence[AgentId]) -> None:
        """Raise unless ``sender`` may address every one of ``recipients``.

        Raises:
            AgentNotFoundError: the sender or a recipient is not registered.
            CrossOrganizationError: a recipient's organization does not accept the
                sender's.
        """
        agents = [sender, *recipients]

        async def read() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for agent in agents:
                    pipe.hget(self._keys.agent(agent), "organization")
                return await pipe.execute()

        orgs = await guarded("check_route", read)
        for agent, org in zip(agents, orgs, strict=True):
            if org is None:
                raise AgentNotFoundError(str(agent))
        sender_org = as_str(orgs[0])
        for recipient, raw in zip(recipients, orgs[1:], strict=True):
            recipient_org = as_str(raw)
            if recipient_org == sender_org:
                continue
            org = await self.get_organization(recipient_org)
            if sender_org not in org.accepts_from:
                raise CrossOrganizationError(str(sender), sender_org, str(recipient), recipient_org)
