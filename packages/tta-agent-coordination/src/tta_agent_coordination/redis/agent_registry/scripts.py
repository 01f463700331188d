"""Typed calls of the registry's Lua scripts (``redis/scripts/registry_*.lua``).

For each script: a function that builds its KEYS and ARGV from named parameters (a
:class:`ScriptCall`) and a ``parse_*`` function that turns what the script returns into a
named result. The positions of both are written here once; the ``.lua`` files document
the same layout in their header.

Every key a script touches is in its KEYS (Redis Cluster correct by construction). The
capability sets of a record are only known once its hash is read: a script that finds
one the caller did not declare changes nothing and returns ``undeclared`` with the
names; the caller adds them to ``capability_sets`` and runs the script again. See
``docs/registry.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple

from tta_agent_coordination.errors import CoordinationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry.codec import ms_to_datetime
from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.keys import KeySpace

__all__ = [
    "DeregisterResult",
    "HeartbeatResult",
    "PeekResult",
    "ReadResult",
    "ReadRow",
    "ReapResult",
    "RegisterResult",
    "ScriptCall",
    "deregister_call",
    "due_call",
    "heartbeat_call",
    "parse_deregister",
    "parse_due",
    "parse_heartbeat",
    "parse_peek",
    "parse_read",
    "parse_reap",
    "parse_register",
    "peek_call",
    "read_call",
    "reap_call",
    "register_call",
    "seed_state_call",
]


class ScriptCall(NamedTuple):
    """One run of a script: its name, its KEYS and its ARGV."""

    script: str
    keys: list[str]
    args: list[Any]


def _flag(value: bool) -> int:
    return 1 if value else 0


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _capability_keys(keys: KeySpace, names: Sequence[str]) -> tuple[list[str], str]:
    """The set key of each capability name, and the names as the scripts read them."""
    unique = _unique(names)
    return [keys.registry_capability(n) for n in unique], " ".join(unique)


def _agent_keys(
    keys: KeySpace, agent_id: AgentId, cap_keys: list[str], *, state: bool = True
) -> list[str]:
    """KEYS of a script that changes one agent: hash, liveness, events, [state], type, caps."""
    state_key = [keys.registry_state(agent_id)] if state else []
    head = [keys.registry_agent(agent_id), keys.registry_liveness, keys.registry_events]
    return [*head, *state_key, keys.registry_type(agent_id.type), *cap_keys]


def _undeclared(raw: Any) -> tuple[str, ...]:
    return tuple(text(raw).split())


def _unexpected(script: str, raw: Any) -> CoordinationError:
    return CoordinationError(f"unexpected result of {script}: {raw!r}")


# --- registry_peek ----------------------------------------------------------------------


class PeekResult(NamedTuple):
    """Before a registration: how long a live holder keeps the id, and retained state."""

    held_for_ms: int
    """Milliseconds until a live holder's liveness expires; 0 when the id is free."""
    state: str | None
    """The state JSON an earlier holder exported, or None."""


def peek_call(keys: KeySpace, agent_id: AgentId) -> ScriptCall:
    """Is ``agent_id`` held by a live owner, and what state is retained for it?"""
    return ScriptCall(
        "registry_peek", [keys.registry_liveness, keys.registry_state(agent_id)], [str(agent_id)]
    )


def parse_peek(raw: Any) -> PeekResult:
    """The result of ``registry_peek``: ``{held ms, has state (1/0), state}``."""
    held_ms, has_state, state = raw
    return PeekResult(int(held_ms), text(state) if int(has_state) else None)


def seed_state_call(
    keys: KeySpace, agent_id: AgentId, state_json: str, *, retention_ms: int, replace: bool
) -> ScriptCall:
    """Store ``state_json`` as ``agent_id``'s saved state unless it is live (or has one)."""
    return ScriptCall(
        "registry_seed_state",
        [keys.registry_liveness, keys.registry_state(agent_id)],
        [str(agent_id), state_json, retention_ms, 1 if replace else 0],
    )


# --- registry_register ------------------------------------------------------------------


class RegisterResult(NamedTuple):
    """What ``registry_register`` did."""

    outcome: Literal["ok", "held", "undeclared"]
    """``ok`` registered; ``held``: a live holder keeps the id; ``undeclared``: retry."""
    registered_at: datetime | None = None
    expires_at: datetime | None = None
    replaced: str = "none"
    """Whom the registration replaced: ``none``, ``alive``, ``expired`` or ``ended``."""
    held_for_ms: int = 0
    """With ``held``: milliseconds until the holder's liveness expires."""
    undeclared: tuple[str, ...] = ()
    """With ``undeclared``: the capabilities whose sets must be declared too."""


def register_call(
    keys: KeySpace,
    agent_id: AgentId,
    *,
    owner: str,
    name: str,
    status: str,
    capabilities_json: str,
    capability_names: Sequence[str],
    metadata_json: str,
    ttl_ms: int,
    takeover: bool,
    retention_ms: int,
    events_max_len: int,
    capability_sets: Sequence[str] = (),
) -> ScriptCall:
    """Register ``agent_id`` under the lease token ``owner``.

    The sets of ``capability_names`` (the new record's) and of ``capability_sets`` (those
    an old record may be in) are declared.
    """
    cap_keys, declared = _capability_keys(keys, [*capability_names, *capability_sets])
    return ScriptCall(
        "registry_register",
        _agent_keys(keys, agent_id, cap_keys, state=False),
        [
            str(agent_id),
            agent_id.type,
            owner,
            name,
            status,
            capabilities_json,
            " ".join(capability_names),
            metadata_json,
            ttl_ms,
            _flag(takeover),
            retention_ms,
            events_max_len,
            declared,
        ],
    )


def parse_register(raw: Any) -> RegisterResult:
    """The result of ``registry_register``.

    ``{'ok', registered_at, expires_at, replaced}``, ``{'held', ms}`` or
    ``{'undeclared', names}``.
    """
    outcome = text(raw[0])
    if outcome == "ok":
        return RegisterResult(
            "ok", ms_to_datetime(raw[1]), ms_to_datetime(raw[2]), replaced=text(raw[3])
        )
    if outcome == "held":
        return RegisterResult("held", held_for_ms=int(raw[1]))
    if outcome == "undeclared":
        return RegisterResult("undeclared", undeclared=_undeclared(raw[1]))
    raise _unexpected("registry_register", raw)


# --- registry_heartbeat -----------------------------------------------------------------


class HeartbeatResult(NamedTuple):
    """What ``registry_heartbeat`` did."""

    outcome: Literal["ok", "gone", "replaced", "expired", "undeclared"]
    """``ok`` renewed; ``gone``: no record; ``replaced``: another owner holds the id;
    ``expired``: the liveness ran out first; ``undeclared``: retry."""
    expires_at: datetime | None = None
    status_changed: bool = False
    undeclared: tuple[str, ...] = ()


def heartbeat_call(
    keys: KeySpace,
    agent_id: AgentId,
    *,
    owner: str,
    ttl_ms: int,
    retention_ms: int,
    events_max_len: int,
    capability_sets: Sequence[str],
    status: str | None = None,
    snapshot_json: str | None = None,
    state_json: str | None = None,
) -> ScriptCall:
    """Renew the registration of ``agent_id`` held by ``owner``.

    ``status`` (None: unchanged), ``snapshot_json`` and ``state_json`` (None: not
    written) go with it. ``capability_sets``: the capabilities of the registration.
    """
    cap_keys, declared = _capability_keys(keys, capability_sets)
    return ScriptCall(
        "registry_heartbeat",
        _agent_keys(keys, agent_id, cap_keys),
        [
            str(agent_id),
            owner,
            ttl_ms,
            status or "",
            _flag(snapshot_json is not None),
            snapshot_json or "",
            _flag(state_json is not None),
            state_json or "",
            retention_ms,
            events_max_len,
            declared,
        ],
    )


def parse_heartbeat(raw: Any) -> HeartbeatResult:
    """The result of ``registry_heartbeat``.

    ``{'ok', now, expires_at, changed}``, ``{'gone'}``, ``{'replaced'}``, ``{'expired'}``
    or ``{'undeclared', names}``.
    """
    outcome = text(raw[0])
    if outcome == "ok":
        return HeartbeatResult("ok", ms_to_datetime(raw[2]), status_changed=bool(int(raw[3])))
    if outcome == "undeclared":
        return HeartbeatResult("undeclared", undeclared=_undeclared(raw[1]))
    if outcome == "gone" or outcome == "replaced" or outcome == "expired":
        return HeartbeatResult(outcome)
    raise _unexpected("registry_heartbeat", raw)


# --- registry_deregister ----------------------------------------------------------------


class DeregisterResult(NamedTuple):
    """What ``registry_deregister`` did."""

    outcome: Literal["ok", "gone", "replaced", "undeclared"]
    """``ok`` removed; ``gone``: no record; ``replaced``: another owner holds the id;
    ``undeclared``: retry."""
    was_alive: bool = False
    undeclared: tuple[str, ...] = ()


def deregister_call(
    keys: KeySpace,
    agent_id: AgentId,
    *,
    owner: str,
    force: bool,
    retention_ms: int,
    events_max_len: int,
    reason: str,
    capability_sets: Sequence[str],
    state_json: str | None = None,
) -> ScriptCall:
    """Remove the registration of ``agent_id`` (``owner``'s, or anyone's with ``force``).

    ``state_json`` (None: nothing) is kept for ``retention_ms``; ``reason`` goes into the
    ``deregistered`` event.
    """
    cap_keys, declared = _capability_keys(keys, capability_sets)
    return ScriptCall(
        "registry_deregister",
        _agent_keys(keys, agent_id, cap_keys),
        [
            str(agent_id),
            owner,
            _flag(force),
            _flag(state_json is not None),
            state_json or "",
            retention_ms,
            events_max_len,
            reason,
            declared,
        ],
    )


def parse_deregister(raw: Any) -> DeregisterResult:
    """The result of ``registry_deregister``.

    ``{'ok', was_alive}``, ``{'gone'}``, ``{'replaced'}`` or ``{'undeclared', names}``.
    """
    outcome = text(raw[0])
    if outcome == "ok":
        return DeregisterResult("ok", was_alive=bool(int(raw[1])))
    if outcome == "undeclared":
        return DeregisterResult("undeclared", undeclared=_undeclared(raw[1]))
    if outcome == "gone" or outcome == "replaced":
        return DeregisterResult(outcome)
    raise _unexpected("registry_deregister", raw)


# --- registry_read ----------------------------------------------------------------------


class ReadRow(NamedTuple):
    """One record as stored: the id, its liveness expiry and its hash fields."""

    agent: str
    expiry_ms: float | None
    """The score in the liveness set (ms, server clock); None when not in it."""
    fields: dict[str, Any]
    """The agent hash (field names decoded, values as the client returned them)."""


class ReadResult(NamedTuple):
    """The records read, with the server time to judge their liveness."""

    now_ms: int
    rows: tuple[ReadRow, ...]


def read_call(
    keys: KeySpace, agent_ids: Sequence[AgentId], *, alive_only: bool, listed_only: bool
) -> ScriptCall:
    """Read the records of ``agent_ids``.

    ``alive_only`` leaves out expired ones; ``listed_only`` those not in the liveness set.
    """
    return ScriptCall(
        "registry_read",
        [keys.registry_liveness, *(keys.registry_agent(a) for a in agent_ids)],
        [_flag(alive_only), _flag(listed_only), *(str(a) for a in agent_ids)],
    )


def parse_read(raw: Any) -> ReadResult:
    """The result of ``registry_read``: ``{now, id, expiry or '', {hash fields}, ...}``."""
    items = list(raw)
    rows: list[ReadRow] = []
    for i in range(1, len(items) - 2, 3):
        score = text(items[i + 1]) if items[i + 1] is not None else ""
        flat = list(items[i + 2])
        rows.append(
            ReadRow(
                agent=text(items[i]),
                expiry_ms=float(score) if score else None,
                fields={text(flat[j]): flat[j + 1] for j in range(0, len(flat) - 1, 2)},
            )
        )
    return ReadResult(int(items[0]), tuple(rows))


# --- registry_due and registry_reap -----------------------------------------------------


def due_call(keys: KeySpace, limit: int) -> ScriptCall:
    """The first ``limit`` registrations whose liveness passed (read only)."""
    return ScriptCall("registry_due", [keys.registry_liveness], [limit])


def parse_due(raw: Any) -> tuple[str, ...]:
    """The result of ``registry_due``: members of the liveness set, earliest first."""
    return tuple(text(member) for member in raw)


class ReapResult(NamedTuple):
    """What ``registry_reap`` did."""

    expired: tuple[AgentId, ...]
    """The registrations this call expired (each reported by exactly one reaper)."""
    skipped: bool
    """A candidate had capabilities not declared: it is still due; reap again."""


def reap_call(
    keys: KeySpace,
    candidates: Sequence[tuple[AgentId, Sequence[str]]],
    *,
    retention_ms: int,
    events_max_len: int,
    strays: Sequence[str] = (),
) -> ScriptCall:
    """Expire the ``candidates`` (id, capability names) whose liveness passed.

    ``strays`` are liveness-set members that are not an agent id (no library writes
    them): they leave the set, and no other key is touched for them.
    """
    key_list = [keys.registry_liveness, keys.registry_events]
    args: list[Any] = [retention_ms, events_max_len, len(candidates)]
    for agent_id, names in candidates:
        cap_keys, declared = _capability_keys(keys, names)
        key_list += [keys.registry_agent(agent_id), keys.registry_type(agent_id.type), *cap_keys]
        args += [str(agent_id), declared]
    return ScriptCall("registry_reap", key_list, [*args, *strays])


def parse_reap(raw: Any) -> ReapResult:
    """The result of ``registry_reap``: ``{skipped (1/0), id...}``."""
    items = list(raw)
    return ReapResult(tuple(AgentId.parse(text(i)) for i in items[1:]), bool(int(items[0])))
