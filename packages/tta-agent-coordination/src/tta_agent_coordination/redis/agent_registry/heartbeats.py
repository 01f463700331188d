"""Heartbeats: renewing the registrations one registry holds, on a schedule or on demand.

One task per registry wakes every ``interval / 4`` (at most 1 s) and starts a beat for
each registration that is due, at most one in flight per agent, so a slow agent hook
never delays another agent. A beat asks the agent's hooks (``status_snapshot``,
periodically ``export_state``) and runs ``registry_heartbeat``. The same task tells the
store which held agents are alive. A registration found unverified (``ownership``: its
liveness may have run out, after a stall) is beaten at once. See ``docs/registry.md``
(Heartbeats, Fencing).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime

from tta_agent_coordination.errors import (
    AgentAlreadyRegisteredError,
    RegistrationExpiredError,
    StaleRegistrationError,
)
from tta_agent_coordination.interfaces import RegistrableAgent
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry.codec import normalise_status
from tta_agent_coordination.redis.agent_registry.core import (
    HeldRegistration,
    RegistryCore,
    fence_clock,
    loop_time,
)
from tta_agent_coordination.redis.agent_registry.hooks import export_state, status_snapshot
from tta_agent_coordination.redis.agent_registry.registration import Registrations, agent_id_of
from tta_agent_coordination.redis.agent_registry.scripts import (
    HeartbeatResult,
    ScriptCall,
    heartbeat_call,
    parse_heartbeat,
)

__all__ = ["Heartbeats"]


class Heartbeats:
    """Renews held registrations: the heartbeat task, single beats and status changes."""

    def __init__(self, core: RegistryCore, registrations: Registrations) -> None:
        self._core = core
        self._registrations = registrations
        self._loop_task: asyncio.Task[None] | None = None
        self._seen_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        core.verify_soon = self._verify_soon

    @property
    def running(self) -> bool:
        """Whether the heartbeat task is running."""
        return self._loop_task is not None and not self._loop_task.done()

    async def heartbeat(self, agent: AgentId | RegistrableAgent) -> datetime:
        """Renew the registration of ``agent`` now; the new liveness expiry.

        Raises:
            StaleRegistrationError: no registration held, or it was removed or replaced.
            RegistrationExpiredError: the liveness expired first.
        """
        held = self._core.held_or_raise(agent_id_of(agent))
        try:
            return await self._beat_once(held)
        except StaleRegistrationError:
            self._core.drop(held)
            raise

    async def set_status(self, agent: AgentId | RegistrableAgent, status: str) -> bool:
        """Set the status (and renew the liveness); whether the status really changed."""
        status = normalise_status(status)
        held = self._core.held_or_raise(agent_id_of(agent))
        held.status = status
        try:
            result = await self._renew(held, status=status)
        except StaleRegistrationError:
            self._core.drop(held)
            raise
        return result.status_changed

    def start(self) -> None:
        """Start the heartbeat task (idempotent; needs a running event loop)."""
        if self.running:
            return
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()  # bound to this loop: made anew on each start
        self._loop_task = loop.create_task(
            self._heartbeat_loop(self._wake), name="registry-heartbeats"
        )

    async def stop(self) -> None:
        """Stop the heartbeat task and wait until it and its beats have ended (idempotent)."""
        task, self._loop_task = self._loop_task, None
        beats = list(self._core.beats.values())
        self._core.beats.clear()
        pending = [t for t in (task, *beats) if t is not None and not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def _verify_soon(self, held: HeldRegistration) -> None:
        """Make ``held`` due now and wake the task, once per renewal (see ``HeldRegistration``)."""
        if held.verify_requested:
            return
        held.verify_requested = True
        held.next_due = 0.0
        if self._wake is not None and self.running:
            self._wake.set()

    # --- the task -----------------------------------------------------------------------

    async def _heartbeat_loop(self, wake: asyncio.Event) -> None:
        core = self._core
        loop = asyncio.get_running_loop()
        tick = max(0.005, min(core.config.resolved_heartbeat_interval_s / 4, 1.0))
        seen_every = core.config.store_seen_interval_s
        seen_due = loop.time() + seen_every
        try:
            while True:
                try:
                    now = loop.time()
                    for agent_id in [a for a, t in core.beats.items() if t.done()]:
                        del core.beats[agent_id]
                    for held in list(core.held.values()):
                        if held.next_due <= now and held.agent_id not in core.beats:
                            core.beats[held.agent_id] = loop.create_task(
                                self._beat_in_background(held), name=f"heartbeat {held.agent_id}"
                            )
                    if core.store is not None and seen_every > 0 and now >= seen_due:
                        seen_due = now + seen_every
                        self._start_seen_record()
                except Exception as exc:  # keep beating whatever happens
                    core.log.exception("heartbeat_loop_error", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), tick)
                wake.clear()
        finally:
            seen, self._seen_task = self._seen_task, None
            if seen is not None:
                seen.cancel()

    def _start_seen_record(self) -> None:
        """Tell the store which held agents are alive, in a task of its own."""
        if self._seen_task is not None and not self._seen_task.done():
            return  # the previous call is still running: skip this round, never pile up
        oldest = loop_time() - self._core.config.heartbeat_ttl_s
        alive = [
            held.agent_id
            for held in self._core.held.values()
            if held.renewed_at is not None and held.renewed_at > oldest
        ]
        if alive:
            self._seen_task = asyncio.get_running_loop().create_task(
                self._record_seen(alive), name="registry-seen"
            )

    async def _record_seen(self, alive: list[AgentId]) -> None:
        store = self._core.store
        assert store is not None
        try:
            await store.record_seen(alive)
        except Exception as exc:  # advisory: the next round tries again
            self._core.log.warning("store_seen_failed", agents=len(alive), error=repr(exc))

    async def _beat_in_background(self, held: HeldRegistration) -> None:
        interval = self._core.config.resolved_heartbeat_interval_s
        started = loop_time()
        try:
            await self._beat_once(held)
        except StaleRegistrationError as exc:
            await self._on_stale(held, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            held.next_due = loop_time() + min(interval / 2, 1.0)
            self._core.log.warning(
                "heartbeat_failed", agent=str(held.agent_id), error=repr(exc), will_retry=True
            )
        else:
            held.next_due = started + interval

    async def _on_stale(self, held: HeldRegistration, exc: StaleRegistrationError) -> None:
        core = self._core
        agent_id = held.agent_id
        if core.held.get(agent_id) is not held:
            return  # deregistered or registered again meanwhile
        if not (isinstance(exc, RegistrationExpiredError) and core.config.auto_reregister):
            core.drop(held)
            core.log.warning("registration_lost", agent=str(agent_id), reason=exc.reason)
            return
        async with core.locked(agent_id):
            if core.held.get(agent_id) is not held:
                return
            fresh = held.renewal()
            try:
                await self._registrations.write(fresh, takeover=False)
            except AgentAlreadyRegisteredError:
                core.drop(held)
                core.log.warning("registration_lost", agent=str(agent_id), reason="taken")
                return
            except Exception as error:
                interval = core.config.resolved_heartbeat_interval_s
                held.next_due = loop_time() + min(interval / 2, 1.0)
                core.log.warning("reregister_failed", agent=str(agent_id), error=repr(error))
                return
            core.held[agent_id] = fresh
        core.log.warning("reregistered_after_expiry", agent=str(agent_id))

    # --- one beat -----------------------------------------------------------------------

    async def _beat_once(self, held: HeldRegistration) -> datetime:
        status, snapshot_json = await status_snapshot(self._core, held)
        wait_s = self._core.config.resolved_hook_timeout_s
        state = await export_state(self._core, held, wait_s=wait_s, periodic=True)
        result = await self._renew(held, status=status, snapshot_json=snapshot_json, state=state)
        if state is not None:
            held.last_state_save = loop_time()
        assert result.expires_at is not None
        held.expires_at = result.expires_at
        held.renewed_at = loop_time()
        return result.expires_at

    async def _renew(
        self,
        held: HeldRegistration,
        *,
        status: str | None = None,
        snapshot_json: str | None = None,
        state: str | None = None,
    ) -> HeartbeatResult:
        """Run ``registry_heartbeat`` for ``held``; its result when it renewed.

        Raises:
            RegistrationExpiredError: the liveness ran out first.
            StaleRegistrationError: the record is gone or another owner holds it.
        """
        core = self._core
        config = core.config

        def build(declared: Sequence[str]) -> ScriptCall:
            return heartbeat_call(
                core.keys,
                held.agent_id,
                owner=held.owner,
                ttl_ms=config.ttl_ms,
                retention_ms=config.retention_ms,
                events_max_len=config.events_limit,
                capability_sets=declared,
                status=status,
                snapshot_json=snapshot_json,
                state_json=state,
            )

        # The owner wrote the record: its capability sets are the registration's own.
        sent = fence_clock()
        result = await core.run_declaring(build, parse_heartbeat, held.capability_names)
        if result.outcome == "ok":
            if sent >= held.valid_until - core.fence_margin_s:
                # It was unverified (a stall, or Redis unreachable): nobody took it over.
                core.log.info("registration_verified", agent=str(held.agent_id))
            # Redis renewed it after ``sent``: it is surely live until sent + TTL.
            held.valid_until = sent + config.heartbeat_ttl_s
            held.verify_requested = False
            return result
        agent_id = str(held.agent_id)
        if result.outcome == "expired":
            raise RegistrationExpiredError(agent_id)
        raise StaleRegistrationError(
            agent_id, "replaced" if result.outcome == "replaced" else "deregistered"
        )
