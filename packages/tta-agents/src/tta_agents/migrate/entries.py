"""Reading the original layout: its queues' entries, parsed into messages of the core.

Raw Redis reads only (the legacy keys are not the core's); nothing here writes. Every
entry that cannot become an ``AgentMessage`` of the core is an :class:`Unmovable` with the
reason, so that it is listed and left where it is, never dropped.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, ValidationError

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.models import (
    AgentId,
    AgentMessage,
    MessagePriority,
    MessageType,
    RoutingKey,
)
from tta_agents.legacy_keys import LEGACY_PRIORITIES, LegacyAgentKey, LegacyKeys

__all__ = [
    "EntrySource",
    "LegacyEntry",
    "LegacyQueue",
    "Unmovable",
    "as_text",
    "find_agents",
    "preview",
    "read_queue",
    "scan_keys",
    "server_now_us",
    "to_agent_id",
]

PREVIEW_CHARS = 120
"""How much of an unmovable entry a report shows."""


class EntrySource(StrEnum):
    """Where a legacy message was found."""

    SCHEDULED = "scheduled"
    """A ``sched`` zset: ready (due) or delayed (due later)."""
    RESERVED = "reserved"
    """The ``reserved`` hash: leased by a consumer that is gone (requeued, attempts + 1)."""
    DEAD = "dead"
    """The ``dlq`` list."""


class Unmovable(BaseModel):
    """A legacy entry (or key) the migration leaves in place, and why."""

    model_config = ConfigDict(frozen=True)

    key: str
    reason: str
    preview: str = ""
    """The start of the raw entry (for a reservation: its token)."""


@dataclass(frozen=True, slots=True)
class LegacyEntry:
    """One legacy message, parsed, with what is needed to move and remove it.

    Attributes:
        source: where it was found.
        key: the legacy key holding it.
        member: the raw value that removes it (zset member, hash field, list value).
        queue: the core queue it moves to (``instance`` ``"default"`` when it had none).
        message: the message as the core will deliver it.
        attempts: deliveries so far (the original's ``delivery_attempts``).
        last_error: the original's last error.
        score_us: due time (scheduled), lease deadline (reserved; 0 when it had none) or
            list position (dead): the order it moves in.
        enqueued_ms: first enqueue time (ms), 0 when unknown.
        fingerprint: SHA-256 of the original message's canonical JSON; copies of one
            message left by the original's races share it.
    """

    source: EntrySource
    key: str
    member: bytes | str
    queue: AgentId
    message: AgentMessage
    attempts: int
    last_error: str | None
    score_us: float
    enqueued_ms: int
    fingerprint: str

    @property
    def journal_field(self) -> str:
        """The journal field of this message: ``"{queue}|{message_id}"``."""
        return f"{self.queue}|{self.message.message_id}"


@dataclass(slots=True)
class LegacyQueue:
    """Everything one legacy agent queue holds, parsed."""

    agent: LegacyAgentKey
    queue: AgentId | None
    """None when the agent's names are not valid core names (every entry is unmovable)."""
    scheduled: list[LegacyEntry]
    """Ordered by priority (high first), then due time: the original receive order."""
    reserved: list[LegacyEntry]
    """Ordered by lease deadline."""
    dead: list[LegacyEntry]
    """In list order (oldest first)."""
    unmovable: list[Unmovable]
    stale_deadlines: int
    """Reservation deadlines without a reservation (left by the original's crashes)."""


def as_text(value: bytes | str) -> str:
    """A Redis reply as text (clients with and without ``decode_responses``).

    Raises:
        UnicodeDecodeError: the bytes are not UTF-8.
    """
    return value.decode("utf-8") if isinstance(value, bytes) else value


def preview(value: bytes | str) -> str:
    """The start of a raw entry, as text, for a report."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return text[:PREVIEW_CHARS]


async def server_now_us(redis: RedisClient) -> int:
    """The Redis server clock in µs (the original scored with client clocks; close enough)."""
    seconds, micros = await redis.time()
    return int(seconds) * 1_000_000 + int(micros)


async def scan_keys(redis: RedisClient, pattern: str) -> list[str]:
    """Every key matching ``pattern``, sorted (one server: the legacy layout has no tags)."""
    found: set[str] = set()
    keys = cast("AsyncIterator[bytes | str]", redis.scan_iter(match=pattern, count=1000))
    async for key in keys:
        found.add(as_text(key))
    return sorted(found)


def to_agent_id(
    agent: LegacyAgentKey, renames: Mapping[str, AgentId] | None = None
) -> AgentId | None:
    """The core queue of a legacy agent key, or None when its names are not valid there.

    ``renames`` maps a legacy ``"type:instance"`` to the core id it moves to instead (for
    names the core refuses, such as an instance holding ``:``).
    """
    if renames and str(agent) in renames:
        return renames[str(agent)]
    try:
        return AgentId(agent.type, agent.instance)
    except ValueError:
        return None


async def find_agents(
    redis: RedisClient, keys: LegacyKeys, odd: list[Unmovable] | None = None
) -> list[LegacyAgentKey]:
    """Every agent with a legacy queue key (sched, reserved, deadlines, dlq, audit), sorted.

    A ``sched`` key that does not parse, or has a priority the original never used, is
    added to ``odd`` (when given): nothing reads it, so it is reported.
    """
    agents: set[LegacyAgentKey] = set()
    for key in await scan_keys(redis, keys.pattern("sched")):
        parsed = keys.parse_sched(key)
        if parsed is None or parsed.priority not in LEGACY_PRIORITIES:
            if odd is not None:
                odd.append(Unmovable(key=key, reason="not a sched key of priority 9, 5 or 1"))
            continue
        agents.add(parsed.agent)
    for kind in ("reserved", "reserved_deadlines", "dlq", "queue"):
        for key in await scan_keys(redis, keys.pattern(kind)):
            agent = keys.parse_agent_key(key, kind)
            if agent is not None:
                agents.add(agent)
    return sorted(agents, key=lambda a: (a.type, a.instance))


def _fingerprint(message: Mapping[str, Any]) -> str:
    canonical = json.dumps(message, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _iso_ms(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return 0
    if moment.tzinfo is None:  # a naive stamp: the original's are UTC
        moment = moment.replace(tzinfo=UTC)
    return max(0, int(moment.timestamp() * 1000))


def _legacy_agent(value: Any, field: str) -> AgentId:
    if not isinstance(value, dict):
        raise ValueError(f"{field} is not an object")
    data = cast("dict[str, Any]", value)
    instance = data.get("instance")
    return AgentId(data.get("type"), instance)


class _Parsed:
    """A legacy payload turned into the core's message and bookkeeping (or ValueError)."""

    def __init__(self, raw: bytes | str, queue: AgentId, priority: int | None) -> None:
        try:
            text = as_text(raw)
        except UnicodeDecodeError:
            raise ValueError("not UTF-8") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc.msg}") from None
        if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
            raise ValueError("not a QueueMessage (no 'message' object)")
        top = cast("dict[str, Any]", data)
        msg = cast("dict[str, Any]", top["message"])
        payload = msg.get("payload", {})
        if not isinstance(payload, dict):
            raise ValueError("payload is not an object")
        try:
            json.dumps(payload, allow_nan=False)
        except ValueError:
            raise ValueError("payload holds NaN or an infinity") from None
        if priority is None:
            priority = msg.get("priority", MessagePriority.NORMAL.value)
        if priority not in LEGACY_PRIORITIES:
            raise ValueError(f"unknown priority {priority!r}")
        attempts = top.get("delivery_attempts", 0)
        if not isinstance(attempts, int) or attempts < 0:
            raise ValueError(f"delivery_attempts {attempts!r} is not a count")
        last_error = top.get("last_error")
        routing: Any = msg.get("routing") or {}
        try:
            self.message = AgentMessage(
                message_id=cast("str", msg.get("message_id")),
                sender=_legacy_agent(msg.get("sender"), "sender"),
                # The key names the queue; the original never checked the field against it.
                recipient=queue,
                message_type=MessageType(msg.get("message_type")),
                payload=cast("dict[str, Any]", payload),
                priority=MessagePriority(priority),
                routing=RoutingKey.model_validate(routing),
                timestamp=msg.get("timestamp"),
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "message"
            raise ValueError(f"invalid message ({where}: {first['msg']})") from None
        self.attempts = attempts
        self.last_error = last_error if isinstance(last_error, str) else None
        self.enqueued_ms = _iso_ms(top.get("enqueued_at"))
        self.fingerprint = _fingerprint(msg)


def _entry(
    source: EntrySource,
    key: str,
    member: bytes | str,
    raw: bytes | str,
    queue: AgentId,
    priority: int | None,
    score_us: float,
) -> LegacyEntry | Unmovable:
    if not math.isfinite(score_us):
        return Unmovable(key=key, reason=f"score {score_us} is not a time", preview=preview(member))
    try:
        parsed = _Parsed(raw, queue, priority)
    except ValueError as exc:
        return Unmovable(key=key, reason=str(exc), preview=preview(member))
    enqueued_ms = parsed.enqueued_ms
    if not enqueued_ms and source is EntrySource.SCHEDULED:
        enqueued_ms = max(0, int(score_us // 1000))
    return LegacyEntry(
        source=source,
        key=key,
        member=member,
        queue=queue,
        message=parsed.message,
        attempts=parsed.attempts,
        last_error=parsed.last_error,
        score_us=score_us,
        enqueued_ms=enqueued_ms,
        fingerprint=parsed.fingerprint,
    )


def _split(
    items: Iterable[LegacyEntry | Unmovable], into: list[LegacyEntry], bad: list[Unmovable]
) -> None:
    for item in items:
        if isinstance(item, Unmovable):
            bad.append(item)
        else:
            into.append(item)


async def read_queue(
    redis: RedisClient,
    keys: LegacyKeys,
    agent: LegacyAgentKey,
    renames: Mapping[str, AgentId] | None = None,
) -> LegacyQueue:
    """Read and parse every message of one legacy agent queue (no writes)."""
    queue = to_agent_id(agent, renames)
    result = LegacyQueue(agent, queue, [], [], [], [], 0)
    reserved_key = keys.reserved(agent)
    deadlines_key = keys.reserved_deadlines(agent)
    dlq_key = keys.dlq(agent)
    sched: dict[int, list[tuple[bytes | str, float]]] = {}
    for priority in LEGACY_PRIORITIES:
        sched[priority] = cast(
            "list[tuple[bytes | str, float]]",
            await redis.zrange(keys.sched(agent, priority), 0, -1, withscores=True),
        )
    reservations: dict[bytes | str, bytes | str] = await redis.hgetall(reserved_key)
    deadlines = cast(
        "list[tuple[bytes | str, float]]",
        await redis.zrange(deadlines_key, 0, -1, withscores=True),
    )
    dead: list[bytes | str] = await redis.lrange(dlq_key, 0, -1)
    if queue is None:
        reason = f"agent {agent} is not a valid core AgentId (rename it: --rename {agent}=NEW)"
        for priority, members in sched.items():
            result.unmovable += [
                Unmovable(key=keys.sched(agent, priority), reason=reason, preview=preview(m))
                for m, _ in members
            ]
        result.unmovable += [
            Unmovable(key=reserved_key, reason=reason, preview=preview(t)) for t in reservations
        ]
        result.unmovable += [
            Unmovable(key=dlq_key, reason=reason, preview=preview(v)) for v in dead
        ]
        return result
    for priority in LEGACY_PRIORITIES:
        key = keys.sched(agent, priority)
        _split(
            (
                _entry(EntrySource.SCHEDULED, key, m, m, queue, priority, s)
                for m, s in sched[priority]
            ),
            result.scheduled,
            result.unmovable,
        )
    deadline_of = {as_text(t): s for t, s in deadlines}
    result.stale_deadlines = len(set(deadline_of) - {as_text(t) for t in reservations})
    taken = [
        _entry(
            EntrySource.RESERVED,
            reserved_key,
            token,
            payload,
            queue,
            None,
            deadline_of.get(as_text(token), 0.0),
        )
        for token, payload in reservations.items()
    ]
    _split(taken, result.reserved, result.unmovable)
    result.reserved.sort(key=lambda e: (e.score_us, as_text(e.member)))
    _split(
        (
            _entry(EntrySource.DEAD, dlq_key, value, value, queue, None, float(i))
            for i, value in enumerate(dead)
        ),
        result.dead,
        result.unmovable,
    )
    return result
