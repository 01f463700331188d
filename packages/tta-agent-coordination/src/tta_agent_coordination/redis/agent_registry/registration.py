"""Registration leases: ``register``, ``register_id``, ``deregister`` and ``evict``.

A registration holds a lease: a random owner token stored with the record. Only that
owner can renew, change or remove it, so a late heartbeat can never bring back a removed
agent and two processes cannot silently share one agent id. See ``docs/registry.md``
(Ownership and leases, State).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from tta_agent_coordination.agents import AgentCapability, AgentRecord
from tta_agent_coordination.errors import (
    AgentAlreadyRegisteredError,
    RegistrationValidationError,
    RegistryUnavailableError,
    StaleRegistrationError,
)
from tta_agent_coordination.interfaces import RegistrableAgent
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry.codec import (
    capabilities_of,
    dump_json,
    normalise_capabilities,
    normalise_status,
)
from tta_agent_coordination.redis.agent_registry.core import (
    HeldRegistration,
    RegistryCore,
    fence_clock,
    loop_time,
)
from tta_agent_coordination.redis.agent_registry.hooks import (
    MAX_METADATA_BYTES,
    export_state,
    maybe_await,
)
from tta_agent_coordination.redis.agent_registry.reaper import hand_over
from tta_agent_coordination.redis.agent_registry.scripts import (
    DeregisterResult,
    ScriptCall,
    deregister_call,
    parse_deregister,
    parse_peek,
    parse_register,
    peek_call,
    register_call,
    seed_state_call,
)
from tta_agent_coordination.store import AgentEvent, AgentEventKind

__all__ = ["DEFAULT_STATUS", "Registrations", "agent_id_of"]

DEFAULT_STATUS = "active"
"""The status of a new registration unless another is given."""


def agent_id_of(agent: AgentId | RegistrableAgent) -> AgentId:
    """``agent`` itself when it is an ``AgentId``, else its ``agent_id`` (concrete).

    A type-wide id stands for its default instance (``AgentId.concrete``).

    Raises:
        RegistrationValidationError: it is neither.
    """
    if isinstance(agent, AgentId):
        return agent.concrete()
    agent_id = getattr(agent, "agent_id", None)
    if not isinstance(agent_id, AgentId):
        raise RegistrationValidationError(f"{agent!r} is neither an AgentId nor has one")
    return agent_id.concrete()


class Registrations:
    """Creates and removes the leases this registry holds."""

    def __init__(self, core: RegistryCore) -> None:
        self._core = core

    async def register(
        self,
        agent: RegistrableAgent,
        *,
        takeover: bool,
        status: str,
        metadata: Mapping[str, Any] | None,
    ) -> AgentRecord:
        """Register ``agent`` (its ``agent_id``, ``name`` and ``capabilities``)."""
        agent_id = getattr(agent, "agent_id", None)
        if not isinstance(agent_id, AgentId):
            raise RegistrationValidationError(
                f"cannot register {agent!r}: it needs an agent_id of type AgentId"
            )
        name = getattr(agent, "name", None)
        if not isinstance(name, str) or not name:
            raise RegistrationValidationError(
                f"cannot register {agent_id}: the agent needs a non-empty str name"
            )
        return await self._register(
            agent_id.concrete(),
            name=name,
            capabilities=capabilities_of(agent),
            metadata=metadata,
            status=status,
            takeover=takeover,
            agent=agent,
        )

    async def register_id(
        self,
        agent_id: AgentId,
        *,
        name: str | None,
        capabilities: Iterable[Any] | None,
        metadata: Mapping[str, Any] | None,
        takeover: bool,
        status: str,
    ) -> AgentRecord:
        """Register ``agent_id`` without an agent object (``name`` defaults to its type)."""
        if not isinstance(agent_id, AgentId):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise RegistrationValidationError(f"agent_id must be an AgentId, got {agent_id!r}")
        if name is not None and (not isinstance(name, str) or not name):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise RegistrationValidationError(f"name must be a non-empty str, got {name!r}")
        return await self._register(
            agent_id.concrete(),
            name=name or agent_id.type,
            capabilities=normalise_capabilities(capabilities),
            metadata=metadata,
            status=status,
            takeover=takeover,
            agent=None,
        )

    async def _register(
        self,
        agent_id: AgentId,
        *,
        name: str,
        capabilities: tuple[AgentCapability, ...],
        metadata: Mapping[str, Any] | None,
        status: str,
        takeover: bool,
        agent: Any,
    ) -> AgentRecord:
        core = self._core
        status = normalise_status(status)
        meta: dict[str, Any] = {str(k): v for k, v in (metadata or {}).items()}
        metadata_json = dump_json(meta, f"metadata of {agent_id}", MAX_METADATA_BYTES)
        async with core.locked(agent_id):
            importer = getattr(agent, "import_state", None) if agent is not None else None
            if callable(importer):
                await self._restore_state(agent_id, importer, takeover=takeover)
            held = HeldRegistration(
                agent_id=agent_id,
                owner=uuid.uuid4().hex,
                name=name,
                capabilities=capabilities,
                metadata_json=metadata_json,
                status=status,
                agent=agent,
                next_due=0.0,
                last_state_save=loop_time(),
            )
            registered_at, replaced = await self.write(held, takeover=takeover)
            core.held[agent_id] = held
        core.log.info("registered", agent=str(agent_id), replaced=replaced)
        await core.record(
            AgentEvent(
                kind=AgentEventKind.REGISTERED,
                agent_id=agent_id,
                name=name,
                capabilities=[c.name for c in capabilities],
                metadata=meta,
            )
        )
        if replaced != "none" and core.coordinator is not None:
            await hand_over(core, core.coordinator, agent_id, reason=f"replaced {replaced}")
        return AgentRecord(
            agent_id=agent_id,
            name=name,
            alive=True,
            status=status,
            capabilities=list(capabilities),
            metadata=meta,
            registered_at=registered_at,
            last_heartbeat=registered_at,
            expires_at=held.expires_at,
        )

    async def _restore_state(
        self, agent_id: AgentId, importer: Callable[..., Any], *, takeover: bool
    ) -> None:
        core = self._core
        peek = parse_peek(await core.run(peek_call(core.keys, agent_id)))
        if peek.held_for_ms > 0 and not takeover:
            raise AgentAlreadyRegisteredError(str(agent_id), peek.held_for_ms / 1000)
        if peek.state is None:
            return
        try:
            state = json.loads(peek.state)
        except ValueError:
            core.log.warning("state_undecodable", agent=str(agent_id))
            return
        await maybe_await(importer(state))
        core.log.info("state_restored", agent=str(agent_id))

    async def write(self, held: HeldRegistration, *, takeover: bool) -> tuple[datetime, str]:
        """Write the registration ``held`` (a new lease token); (registered_at, replaced).

        Raises:
            AgentAlreadyRegisteredError: a live holder with another token keeps the id.
        """
        core = self._core
        config = core.config
        names = held.capability_names
        caps_json = dump_json(
            [c.model_dump(mode="json") for c in held.capabilities], "capabilities"
        )

        def build(declared: Sequence[str]) -> ScriptCall:
            return register_call(
                core.keys,
                held.agent_id,
                owner=held.owner,
                name=held.name,
                status=held.status,
                capabilities_json=caps_json,
                capability_names=names,
                metadata_json=held.metadata_json,
                ttl_ms=config.ttl_ms,
                takeover=takeover,
                retention_ms=config.retention_ms,
                events_max_len=config.events_limit,
                capability_sets=declared,
            )

        # An old record's capabilities are usually the new ones (the same agent again).
        sent = fence_clock()
        result = await core.run_declaring(build, parse_register, names)
        if result.outcome == "held":
            raise AgentAlreadyRegisteredError(str(held.agent_id), result.held_for_ms / 1000)
        assert result.registered_at is not None
        held.valid_until = sent + config.heartbeat_ttl_s
        held.expires_at = result.expires_at
        held.renewed_at = loop_time()
        held.next_due = loop_time() + config.resolved_heartbeat_interval_s
        return result.registered_at, result.replaced

    async def deregister(self, agent: AgentId | RegistrableAgent, *, save_state: bool) -> bool:
        """Remove this registry's registration of ``agent``; False when it holds none.

        Raises:
            StaleRegistrationError: another owner took the id over meanwhile.
            RegistryUnavailableError: Redis failed; the registration is kept.
        """
        core = self._core
        agent_id = agent_id_of(agent)
        async with core.locked(agent_id):
            held = core.held.pop(agent_id, None)
            if held is None:
                return False
            core.cancel_beat(agent_id)
            state = await export_state(core, held, wait_s=None) if save_state else None
            try:
                result = await self._remove(
                    agent_id,
                    owner=held.owner,
                    state=state,
                    force=False,
                    capability_sets=held.capability_names,
                )
            except RegistryUnavailableError:
                core.held.setdefault(agent_id, held)
                raise
        if result.outcome == "replaced":
            core.log.warning("deregister_refused", agent=str(agent_id), reason="replaced")
            raise StaleRegistrationError(str(agent_id), "replaced")
        core.log.info("deregistered", agent=str(agent_id), found=result.outcome == "ok")
        await self._record_gone(agent_id)
        return True

    async def seed_state(self, agent_id: AgentId, state: Any, *, replace: bool) -> bool:
        """Store ``state`` for ``agent_id``'s next registration; see the registry's method."""
        core = self._core
        state_json = dump_json(state, f"state of {agent_id}", core.config.max_state_bytes)
        call = seed_state_call(
            core.keys,
            agent_id,
            state_json,
            retention_ms=core.config.retention_ms,
            replace=replace,
        )
        outcome = int(await core.run(call))
        if outcome < 0:
            raise AgentAlreadyRegisteredError(str(agent_id))
        return outcome == 1

    async def evict(self, agent_id: AgentId) -> bool:
        """Remove ``agent_id``'s registration whoever owns it; whether there was one."""
        core = self._core
        async with core.locked(agent_id):
            held = core.held.pop(agent_id, None)
            if held is not None:
                core.cancel_beat(agent_id)
            result = await self._remove(
                agent_id,
                owner="",
                state=None,
                force=True,
                reason="evicted",
                capability_sets=held.capability_names if held is not None else (),
            )
        core.log.info("evicted", agent=str(agent_id), found=result.outcome == "ok")
        await self._record_gone(agent_id)
        return result.outcome == "ok"

    async def _remove(
        self,
        agent_id: AgentId,
        *,
        owner: str,
        state: str | None,
        force: bool,
        capability_sets: Sequence[str],
        reason: str = "deregistered",
    ) -> DeregisterResult:
        core = self._core
        config = core.config

        def build(declared: Sequence[str]) -> ScriptCall:
            return deregister_call(
                core.keys,
                agent_id,
                owner=owner,
                force=force,
                retention_ms=config.retention_ms,
                events_max_len=config.events_limit,
                reason=reason,
                capability_sets=declared,
                state_json=state,
            )

        return await core.run_declaring(build, parse_deregister, capability_sets)

    async def _record_gone(self, agent_id: AgentId) -> None:
        """Tell the store (if any) that ``agent_id`` left the directory."""
        await self._core.record(AgentEvent(kind=AgentEventKind.DEREGISTERED, agent_id=agent_id))
