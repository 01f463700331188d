"""``migrate_keys``: move a legacy deployment's messages into the core's key space, once.

For each legacy agent queue, in the original receive order (priority, then due time):

1. scheduled messages are restored ready (due) or delayed (due later) with their attempts
   and last error; reservations (their consumers are stopped) are requeued after them with
   one more attempt, or dead-lettered when that was their last allowed attempt; dead
   letters are dead-lettered again;
2. each restore goes through the core's public ``restore_messages`` (its dedupe skips a
   message id the queue already holds: a re-run, or the run a crash interrupted);
3. only after the restore returned is the legacy entry removed, in the same script that
   records it in the migration journal (:mod:`.journal`).

Entries that are not valid messages of the core are left in place and listed. See
``docs/tta-key-migration.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

from pydantic import BaseModel, Field

from tta_agent_coordination.clients import RedisClient, is_cluster
from tta_agent_coordination.errors import CoordinationError
from tta_agent_coordination.interfaces import CoordinatorLimits
from tta_agent_coordination.models import AgentId, FailureType, MessageSubscription, MessageType
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.store import PendingMessage
from tta_agents.legacy_keys import LegacyAgentKey, LegacyKeys
from tta_agents.migrate.entries import (
    EntrySource,
    LegacyEntry,
    Unmovable,
    as_text,
    find_agents,
    preview,
    read_queue,
    scan_keys,
    server_now_us,
    to_agent_id,
)
from tta_agents.migrate.journal import Finished, FinishItem, SourceKind, finish, journal_value
from tta_agents.migrate.states import StateSeeder, migrate_states

__all__ = [
    "LEGACY_DEAD_HEADER",
    "LEGACY_ERROR_HEADER",
    "MigrationError",
    "MigrationReport",
    "MigrationTarget",
    "QueueMigration",
    "migrate_keys",
]

log = get_logger(__name__)

LEGACY_DEAD_HEADER = "tta-legacy-dead"
"""Header of a message dead-lettered by the migration: why it is dead."""
LEGACY_ERROR_HEADER = "tta-legacy-error"
"""Header of a message dead-lettered by the migration: its last error in the original."""

DEFAULT_CHUNK = 100
"""Messages per restore call and per journal script."""


class MigrationError(CoordinationError):
    """The migration cannot run (for example on a Redis Cluster client)."""


class MigrationTarget(Protocol):
    """What the migration needs of the new coordinator (``RedisMessageCoordinator`` has it)."""

    @property
    def config(self) -> CoordinatorLimits:
        """Its limits (``retry_attempts`` decides whether a reservation was the last try)."""
        ...

    async def restore_messages(self, messages: Sequence[PendingMessage]) -> list[bool]:
        """Enqueue messages with their attempts; False for an id the queue already holds."""
        ...

    async def subscribe(
        self, agent_id: AgentId, message_types: list[MessageType]
    ) -> MessageSubscription:
        """Subscribe ``agent_id`` to ``message_types``."""
        ...

    async def subscribers(self, message_type: MessageType) -> list[AgentId]:
        """The agents subscribed to ``message_type``."""
        ...


class QueueMigration(BaseModel):
    """What moved (or, in a dry run, would move) from one legacy agent queue."""

    legacy: str
    """The legacy ``type:instance``."""
    queue: str
    """The core queue (``AgentId`` text) it moved to."""
    ready: int = 0
    delayed: int = 0
    requeued: int = 0
    """Reservations returned to the queue with one more attempt."""
    dead: int = 0
    """Dead letters, and reservations whose lease was their last allowed attempt."""
    duplicates: int = 0
    """Copies of a message already moved (left by the original's races): removed."""
    vanished: int = 0
    """Entries removed from their legacy key by someone else while this run moved them (an
    original consumer still running, or a concurrent run): check them by hand, a message
    restored here may also have been handled by the original code."""
    already_present: int = 0
    """Moved messages whose id the new queue already held (an interrupted run restored
    them): their legacy entries were removed, nothing was enqueued twice."""

    @property
    def moved(self) -> int:
        """Messages moved into the new key space."""
        return self.ready + self.delayed + self.requeued + self.dead


class MigrationReport(BaseModel):
    """The outcome of :func:`migrate_keys`."""

    dry_run: bool
    queues: list[QueueMigration] = Field(default_factory=list[QueueMigration])
    subscriptions: int = 0
    """Legacy subscription sets moved (or that would move)."""
    states_seeded: int = 0
    """Saved agent states seeded into the registry (or that would be), when one is given."""
    states_kept: int = 0
    """Saved agent states not seeded because the registry already held one (a rerun)."""
    unmovable: list[Unmovable] = Field(default_factory=list[Unmovable])
    """Entries left in place, with the reason."""

    @property
    def moved(self) -> int:
        """Messages moved (or that would move), over every queue."""
        return sum(q.moved for q in self.queues)


def _moved_as(entry: LegacyEntry, now_us: int, retry_attempts: int) -> str:
    if entry.source is EntrySource.SCHEDULED:
        return "delayed" if entry.score_us > now_us else "ready"
    if entry.source is EntrySource.RESERVED:
        return "dead" if entry.attempts + 1 > retry_attempts else "requeued"
    return "dead"


def _pending(entry: LegacyEntry, moved_as: str, retry_attempts: int) -> PendingMessage:
    message = entry.message
    attempts = entry.attempts
    available_at_ms = 0
    # The message's own expiry, if it has one, as a send would have stored it.
    expires = message.expires_at
    expires_at_ms = int(expires.timestamp() * 1000) if expires is not None else 0
    if entry.source is EntrySource.SCHEDULED:
        available_at_ms = max(0, math.ceil(entry.score_us / 1000))
    elif entry.source is EntrySource.RESERVED:
        attempts += 1  # the lease its consumer never settled was a delivery
    failure: FailureType | None = None
    if moved_as == "dead":
        # Restored straight into the dead-letter queue (never delivered). The original
        # DLQ kept no failure type: a message past its retries ran out of transient
        # failures, any other was refused as permanent; a lease that expired on its last
        # attempt timed out. The headers keep the original reason and error.
        if entry.source is EntrySource.DEAD:
            exhausted = entry.attempts > retry_attempts
            failure = FailureType.TRANSIENT if exhausted else FailureType.PERMANENT
            reason = "dead-lettered before the migration"
        else:
            failure = FailureType.TIMEOUT
            reason = "lease expired on its last allowed attempt"
        headers = {**message.headers, LEGACY_DEAD_HEADER: reason}
        if entry.last_error is not None:
            headers[LEGACY_ERROR_HEADER] = entry.last_error
        message = message.model_copy(update={"headers": headers})
    return PendingMessage(
        message_id=message.message_id,
        recipient=entry.queue,
        envelope=message.model_dump_json(exclude_none=True),
        priority=message.priority,
        attempts=attempts,
        last_error=entry.last_error,
        incarnation=entry.enqueued_ms,
        expires_at_ms=expires_at_ms,
        available_at_ms=available_at_ms,
        failure=failure,
    )


def _chunks(entries: list[LegacyEntry], size: int) -> list[list[LegacyEntry]]:
    """Runs of entries from one legacy key, at most ``size`` long, in order."""
    out: list[list[LegacyEntry]] = []
    for entry in entries:
        if out and out[-1][0].key == entry.key and len(out[-1]) < size:
            out[-1].append(entry)
        else:
            out.append([entry])
    return out


_KIND = {
    EntrySource.SCHEDULED: SourceKind.ZSET,
    EntrySource.RESERVED: SourceKind.HASH,
    EntrySource.DEAD: SourceKind.LIST,
}


class _Mover:
    def __init__(
        self,
        redis: RedisClient,
        target: MigrationTarget,
        keys: LegacyKeys,
        report: MigrationReport,
        chunk: int,
    ) -> None:
        self.redis = redis
        self.target = target
        self.keys = keys
        self.report = report
        self.chunk = chunk
        self.retry_attempts = target.config.retry_attempts

    async def queue(self, entries: list[LegacyEntry], counts: QueueMigration, now_us: int) -> None:
        seen: dict[str, str] = {}  # journal field -> fingerprint of its first copy
        for chunk in _chunks(entries, self.chunk):
            await self._chunk(chunk, counts, now_us, seen)

    async def _chunk(
        self,
        chunk: list[LegacyEntry],
        counts: QueueMigration,
        now_us: int,
        seen: dict[str, str],
    ) -> None:
        fields = [e.journal_field for e in chunk]
        recorded: list[bytes | str | None] = await self.redis.hmget(self.keys.journal, fields)
        moved_as = [_moved_as(e, now_us, self.retry_attempts) for e in chunk]
        restore: list[int] = []
        # The fingerprint each entry's message id is (or will be) recorded with.
        known: list[str | None] = []
        for i, (entry, prev) in enumerate(zip(chunk, recorded, strict=True)):
            field = entry.journal_field
            known.append(as_text(prev)[:64] if prev is not None else seen.get(field))
            # Restore only the first copy of a message the journal does not know; a later
            # copy, or a recorded one, is settled by the journal script alone.
            if known[i] is None:
                restore.append(i)
                seen[field] = entry.fingerprint
        if self.report.dry_run:
            for i, entry in enumerate(chunk):
                if known[i] is None:
                    setattr(counts, moved_as[i], getattr(counts, moved_as[i]) + 1)
                elif known[i] != entry.fingerprint:
                    self._conflict(entry)
                else:
                    counts.duplicates += 1
            return
        pending = [_pending(chunk[i], moved_as[i], self.retry_attempts) for i in restore]
        flags = await self.target.restore_messages(pending)
        restored = dict(zip(restore, flags, strict=True))
        first = chunk[0]
        done = await finish(
            self.redis,
            self.keys.journal,
            _KIND[first.source],
            first.key,
            [
                FinishItem(
                    e.member,
                    e.journal_field,
                    e.fingerprint,
                    journal_value(e.fingerprint, moved_as[i], e.key),
                )
                for i, e in enumerate(chunk)
            ],
            deadlines_key=(
                self.keys.reserved_deadlines(_legacy_agent(self.keys, first))
                if first.source is EntrySource.RESERVED
                else None
            ),
        )
        for i, (entry, outcome) in enumerate(zip(chunk, done, strict=True)):
            if outcome is Finished.MOVED:
                setattr(counts, moved_as[i], getattr(counts, moved_as[i]) + 1)
                if restored.get(i) is False:
                    counts.already_present += 1
            elif outcome is Finished.DUPLICATE:
                counts.duplicates += 1
            elif outcome is Finished.CONFLICT:
                self._conflict(entry)
            else:
                counts.vanished += 1
                log.warning(
                    "legacy entry vanished while migrating (is an original consumer running?)",
                    key=entry.key,
                    message_id=entry.message.message_id,
                    restored=restored.get(i, False),
                )

    def _conflict(self, entry: LegacyEntry) -> None:
        self.report.unmovable.append(
            Unmovable(
                key=entry.key,
                reason=(
                    f"message id {entry.message.message_id!r} of queue {entry.queue} was "
                    "already moved with different content"
                ),
                preview=preview(entry.member),
            )
        )


def _legacy_agent(keys: LegacyKeys, entry: LegacyEntry) -> LegacyAgentKey:
    agent = keys.parse_agent_key(entry.key, "reserved")
    assert agent is not None  # a reserved entry's key is a reserved key
    return agent


async def _subscriptions(
    redis: RedisClient,
    target: MigrationTarget,
    keys: LegacyKeys,
    report: MigrationReport,
    renames: Mapping[str, AgentId],
) -> None:
    for key in await scan_keys(redis, keys.pattern("subs")):
        agent = keys.parse_agent_key(key, "subs")
        agent_id = to_agent_id(agent, renames) if agent is not None else None
        if agent_id is None:
            report.unmovable.append(Unmovable(key=key, reason="not a valid core AgentId"))
            continue
        raw: set[bytes | str] = await redis.smembers(key)
        values = sorted(as_text(v) for v in raw)
        wanted: list[MessageType] = []
        bad = [v for v in values if v not in MessageType.__members__.values()]
        if bad:
            report.unmovable.append(Unmovable(key=key, reason=f"unknown message types {bad}"))
            continue
        for value in values:
            message_type = MessageType(value)
            # Subscribing is not idempotent (a new subscription id each time): skip the
            # types a run interrupted before the DEL below already subscribed.
            if agent_id not in await target.subscribers(message_type):
                wanted.append(message_type)
        report.subscriptions += 1
        if report.dry_run:
            continue
        if wanted:
            await target.subscribe(agent_id, wanted)
        await redis.delete(key)


async def migrate_keys(
    redis: RedisClient,
    coordinator: MigrationTarget,
    *,
    prefix: str = "ao",
    dry_run: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
    renames: Mapping[str, AgentId] | None = None,
    registry: StateSeeder | None = None,
) -> MigrationReport:
    """Move every queued, delayed, reserved and dead legacy message into ``coordinator``.

    Run it with the original consumers stopped and before the new workers start (see
    ``docs/tta-key-migration.md``). Safe to run again, and to resume after a crash: each
    message is enqueued once. Subscription sets move too, and, with ``registry``, each
    agent record's saved state (for the agent's next registration; ``states.py``). Agent
    records, breaker state, the audit lists and TTA's application keys are left in place
    (:func:`legacy_report` lists them).

    Args:
        redis: a client of the server holding the legacy keys (not a Cluster client).
        coordinator: the new coordinator, on the same server (its ``key_prefix`` may be
            the legacy ``prefix``: the two layouts do not collide).
        prefix: the original ``key_prefix``.
        dry_run: report what would move, change nothing.
        chunk_size: messages per restore and journal call.
        renames: legacy ``"type:instance"`` -> the core id its queue and subscriptions
            move to (for agent names the core refuses; see ``legacy_report``).
        registry: where saved agent states go (a ``RedisAgentRegistry`` on the new
            prefix); None leaves them in the legacy records.

    Returns:
        What moved, per queue, and what was left in place and why.

    Raises:
        MigrationError: ``redis`` is a Redis Cluster client, or ``chunk_size`` < 1.
    """
    if is_cluster(redis):
        raise MigrationError(
            "the legacy key layout has no hash tags: migrate on the single server that holds it"
        )
    if chunk_size < 1:
        raise MigrationError(f"chunk_size must be at least 1, got {chunk_size}")
    keys = LegacyKeys(prefix)
    report = MigrationReport(dry_run=dry_run)
    mover = _Mover(redis, coordinator, keys, report, chunk_size)
    now_us = await server_now_us(redis)
    renames = dict(renames or {})
    for agent in await find_agents(redis, keys, report.unmovable):
        legacy = await read_queue(redis, keys, agent, renames)
        report.unmovable += legacy.unmovable
        if legacy.queue is None:
            continue
        counts = QueueMigration(legacy=str(agent), queue=str(legacy.queue))
        await mover.queue(legacy.scheduled + legacy.reserved + legacy.dead, counts, now_us)
        report.queues.append(counts)
        log.info(
            "legacy queue migrated" if not dry_run else "legacy queue planned",
            legacy=str(agent),
            queue=str(legacy.queue),
            moved=counts.moved,
            duplicates=counts.duplicates,
        )
    await _subscriptions(redis, coordinator, keys, report, renames)
    if registry is not None:
        states = await migrate_states(redis, registry, keys, renames=renames, dry_run=dry_run)
        report.states_seeded, report.states_kept = states.seeded, states.kept
        report.unmovable += states.unmovable
    return report
