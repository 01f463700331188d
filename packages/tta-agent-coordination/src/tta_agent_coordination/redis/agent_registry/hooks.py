"""Calling an agent's optional hooks: ``status_snapshot``, ``export_state``, ``import_state``.

Hooks are found by name and may be sync or async. A hook that is slow or fails never
stops a heartbeat: it is skipped for that beat and logged. See ``docs/registry.md``
(Heartbeats, State).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from tta_agent_coordination.redis.agent_registry.codec import dump_json, snapshot_parts
from tta_agent_coordination.redis.agent_registry.core import (
    HeldRegistration,
    RegistryCore,
    loop_time,
)

__all__ = ["MAX_METADATA_BYTES", "call_hook", "export_state", "maybe_await", "status_snapshot"]

MAX_METADATA_BYTES = 64 * 1024
"""The largest metadata or status snapshot kept, serialised."""


async def maybe_await(value: Any) -> Any:
    """``value``, awaited first when it is awaitable (what a sync-or-async hook returned)."""
    if inspect.isawaitable(value):
        return await value
    return value


async def call_hook(hook: Callable[[], Any], wait_s: float | None) -> Any:
    """Call ``hook``; when it is async, wait at most ``wait_s`` (None: no limit).

    Raises:
        TimeoutError: the hook took longer.
    """
    value = hook()
    if not inspect.isawaitable(value):
        return value
    if wait_s is None:
        return await value
    return await asyncio.wait_for(value, wait_s)


async def status_snapshot(
    core: RegistryCore, held: HeldRegistration
) -> tuple[str | None, str | None]:
    """The agent's (status, snapshot JSON) from ``status_snapshot()``; Nones without one.

    A slow or failing hook gives (None, None) and is logged. A status it returns becomes
    the registration's status.
    """
    hook = getattr(held.agent, "status_snapshot", None) if held.agent is not None else None
    if not callable(hook):
        return None, None
    wait_s = core.config.resolved_hook_timeout_s
    try:
        value = await call_hook(hook, wait_s)
        status, snapshot = snapshot_parts(value)
        snapshot_json = (
            None
            if snapshot is None
            else dump_json(snapshot, f"status snapshot of {held.agent_id}", MAX_METADATA_BYTES)
        )
    except TimeoutError:
        core.log.warning("status_snapshot_slow", agent=str(held.agent_id), timeout_s=wait_s)
        return None, None
    except Exception as exc:
        core.log.warning("status_snapshot_failed", agent=str(held.agent_id), error=repr(exc))
        return None, None
    if status is not None:
        held.status = status
    return status, snapshot_json


async def export_state(
    core: RegistryCore, held: HeldRegistration, *, wait_s: float | None, periodic: bool = False
) -> str | None:
    """The agent's ``export_state()`` as JSON; None without the hook, or when it fails.

    ``periodic`` (a heartbeat) exports only every ``state_save_interval_s``. State that is
    not serialisable or over ``max_state_bytes`` is not saved (logged).
    """
    exporter = getattr(held.agent, "export_state", None) if held.agent is not None else None
    if not callable(exporter):
        return None
    save_every = core.config.resolved_state_save_interval_s
    if periodic and (save_every <= 0 or loop_time() - held.last_state_save < save_every):
        return None
    try:
        value = await call_hook(exporter, wait_s)
        return dump_json(value, f"state of {held.agent_id}", core.config.max_state_bytes)
    except TimeoutError:
        core.log.warning("export_state_slow", agent=str(held.agent_id), timeout_s=wait_s)
    except Exception as exc:
        core.log.error("export_state_failed", agent=str(held.agent_id), error=repr(exc))
    return None
