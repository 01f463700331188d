"""``legacy_report``: what a deployment of the original coordination code holds (read-only)."""

from __future__ import annotations

import json
from typing import Any, cast

from pydantic import BaseModel, Field

from tta_agent_coordination.clients import RedisClient
from tta_agents.legacy_keys import LEGACY_PRIORITIES, LegacyAgentKey, LegacyKeys
from tta_agents.migrate.entries import (
    EntrySource,
    LegacyQueue,
    Unmovable,
    as_text,
    find_agents,
    read_queue,
    scan_keys,
    server_now_us,
)

__all__ = ["LegacyAgentState", "LegacyQueueReport", "LegacyReport", "legacy_report"]


class LegacyQueueReport(BaseModel):
    """One legacy agent queue: what its keys hold."""

    agent: str
    """The legacy ``type:instance``."""
    queue: str | None
    """The core queue it migrates to; None when its names are not valid core names."""
    ready: dict[int, int] = Field(default_factory=dict[int, int])
    """Due messages per priority (9, 5, 1)."""
    delayed: int = 0
    """Scheduled messages not due yet (retries waiting out their backoff)."""
    reserved: int = 0
    """Reservations whose lease is still running."""
    expired: int = 0
    """Reservations whose lease expired (their consumer is gone)."""
    dead: int = 0
    unparsable: int = 0
    stale_deadlines: int = 0
    """Reservation deadlines without a reservation (not migrated; harmless)."""
    audit: int = 0
    """Entries of the "audit" list (``queue:…``): not migrated."""
    orphans: int = 0
    """Audit entries whose message is nowhere else (not scheduled, reserved or dead, and
    not moved by the migration): leaked by the original's crash windows. Not migrated."""


class LegacyAgentState(BaseModel):
    """A legacy registry record (``agents:{type}:{inst}``)."""

    agent: str
    has_state: bool
    """Whether the record holds a saved ``state`` (not migrated: see the migration doc)."""
    ttl_ms: int
    """Milliseconds left before the record expires (-1: no expiry)."""


class LegacyReport(BaseModel):
    """Everything a legacy deployment holds under one prefix."""

    prefix: str
    queues: list[LegacyQueueReport] = Field(default_factory=list[LegacyQueueReport])
    subscriptions: dict[str, list[str]] = Field(default_factory=dict[str, list[str]])
    """Per legacy agent, the message types it subscribed to."""
    agents: list[LegacyAgentState] = Field(default_factory=list[LegacyAgentState])
    breakers: dict[str, str] = Field(default_factory=dict[str, str])
    """Per breaker name, its persisted state (``closed``/``open``/``half_open``, or
    ``unparsable``)."""
    unparsable: list[Unmovable] = Field(default_factory=list[Unmovable])
    migrated: int = 0
    """Messages the migration journal records as moved already."""

    @property
    def messages(self) -> int:
        """Movable messages over every queue (ready, delayed, reserved, expired, dead)."""
        return sum(
            sum(q.ready.values()) + q.delayed + q.reserved + q.expired + q.dead for q in self.queues
        )


def _message_id(raw: bytes | str) -> str | None:
    try:
        data = json.loads(as_text(raw))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    message = cast("dict[str, Any]", data).get("message") if isinstance(data, dict) else None
    if not isinstance(message, dict):
        return None
    value = cast("dict[str, Any]", message).get("message_id")
    return value if isinstance(value, str) else None


async def _audit(
    redis: RedisClient, keys: LegacyKeys, agent: LegacyAgentKey, legacy: LegacyQueue
) -> tuple[int, int]:
    """The audit list's length, and how many of its messages are nowhere else."""
    entries: list[bytes | str] = await redis.lrange(keys.audit(agent), 0, -1)
    live = {e.message.message_id for e in (*legacy.scheduled, *legacy.reserved, *legacy.dead)}
    ids = {i for i in map(_message_id, entries) if i is not None and i not in live}
    if ids and legacy.queue is not None:
        fields = sorted(ids)
        moved = await redis.hmget(keys.journal, [f"{legacy.queue}|{i}" for i in fields])
        ids = {i for i, m in zip(fields, moved, strict=True) if m is None}
    orphans = sum(1 for i in map(_message_id, entries) if i in ids)
    return len(entries), orphans


def _state_of(raw: bytes | str | None) -> str:
    try:
        data = json.loads(as_text(raw)) if raw is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if isinstance(data, dict):
        state = cast("dict[str, Any]", data).get("state")
        if isinstance(state, str):
            return state
    return "unparsable"


async def legacy_report(redis: RedisClient, prefix: str = "ao") -> LegacyReport:
    """List what the original layout holds under ``prefix``; changes nothing.

    Args:
        redis: a client of the server holding the legacy keys.
        prefix: the original ``key_prefix``.
    """
    keys = LegacyKeys(prefix)
    report = LegacyReport(prefix=keys.prefix)
    now_us = await server_now_us(redis)
    for agent in await find_agents(redis, keys, report.unparsable):
        legacy = await read_queue(redis, keys, agent)
        row = LegacyQueueReport(
            agent=str(agent),
            queue=str(legacy.queue) if legacy.queue is not None else None,
            ready=dict.fromkeys(LEGACY_PRIORITIES, 0),
            unparsable=len(legacy.unmovable),
            stale_deadlines=legacy.stale_deadlines,
        )
        row.audit, row.orphans = await _audit(redis, keys, agent, legacy)
        for entry in legacy.scheduled:
            if entry.score_us > now_us:
                row.delayed += 1
            else:
                row.ready[entry.message.priority.value] += 1
        for entry in legacy.reserved:
            # A reservation without a deadline (a crash between the original's HSET and
            # ZADD) never expires by itself: count it as expired, its consumer is gone.
            if entry.score_us > 0 and entry.score_us > now_us:
                row.reserved += 1
            else:
                row.expired += 1
        row.dead = sum(1 for e in legacy.dead if e.source is EntrySource.DEAD)
        report.queues.append(row)
        report.unparsable += legacy.unmovable
    for key in await scan_keys(redis, keys.pattern("subs")):
        agent = keys.parse_agent_key(key, "subs")
        if agent is not None:
            members: set[bytes | str] = await redis.smembers(key)
            report.subscriptions[str(agent)] = sorted(as_text(m) for m in members)
    for key in await scan_keys(redis, keys.pattern("agents")):
        agent = keys.parse_agent_key(key, "agents")
        if agent is None:
            continue
        raw: bytes | str | None = await redis.get(key)
        record: Any = None
        try:
            record = json.loads(as_text(raw)) if raw is not None else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            report.unparsable.append(Unmovable(key=key, reason="registry record is not JSON"))
        has_state = isinstance(record, dict) and bool(cast("dict[str, Any]", record).get("state"))
        report.agents.append(
            LegacyAgentState(agent=str(agent), has_state=has_state, ttl_ms=await redis.pttl(key))
        )
    for key in await scan_keys(redis, keys.pattern("cb:state")):
        name = keys.parse_breaker(key)
        if name is not None:
            report.breakers[name] = _state_of(await redis.get(key))
    report.migrated = await redis.hlen(keys.journal)
    return report
