"""What the dashboard shows, read through the coordinator, the registry and the store.

Every read is bounded by a page size, never by how many queues, agents' messages or dead
letters there are: a queue page is one index page (``SSCAN``) plus that page's queues; a
dead-letter page is one ``XRANGE``/``XREVRANGE``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from tta_agent_coordination.agents import AgentRecord
from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.dashboard.interaction_pages import InteractionPages
from tta_agent_coordination.dashboard.runs import RunPages
from tta_agent_coordination.dashboard.samples import QueueSamples, sparkline_points
from tta_agent_coordination.interactions import AgentMessaging
from tta_agent_coordination.models import (
    AgentId,
    DeadLetter,
    MessagePriority,
    QueueStats,
    UndecodableDeadLetter,
)
from tta_agent_coordination.plans import RunAdmin
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.redis.breaker_pages import BreakerDirectory, BreakerRow
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.redis.dead_letter_pages import (
    DeadLetterPage,
    read_dead_letter,
    read_dead_letter_page,
)
from tta_agent_coordination.redis.queue_pages import (
    QueueFlow,
    count_queues,
    read_queue_flows,
    read_queue_page,
)
from tta_agent_coordination.store import MessageStore

__all__ = [
    "AgentGroup",
    "DashboardSources",
    "MessageHistory",
    "QueueRow",
    "QueueRows",
]


@runtime_checkable
class MessageHistory(Protocol):
    """A store that can tell a message's history (``PostgresMessageStore`` can)."""

    async def get(self, message_id: str, *, with_events: bool = True) -> Sequence[Any]:
        """The records of ``message_id``, one per recipient, each with its ``events``."""
        ...


@dataclass(frozen=True)
class AgentGroup:
    """The registered instances of one agent type."""

    type: str
    records: list[AgentRecord]
    heartbeat_ages: list[float | None]
    """Seconds since each record's last heartbeat (same order as ``records``)."""

    @property
    def alive(self) -> int:
        """How many instances are alive."""
        return sum(1 for r in self.records if r.alive)


@dataclass(frozen=True)
class QueueRow:
    """One queue as the queue list shows it."""

    stats: QueueStats
    flow: QueueFlow
    depth_line: str
    """SVG points of the depth sparkline."""
    rate_line: str
    """SVG points of the entries-added-per-second sparkline."""
    rate: float | None
    """The latest entries added per second, once two samples exist."""

    @property
    def agent_id(self) -> AgentId:
        """The queue's agent."""
        return self.stats.agent_id

    def ready(self, priority: str) -> int:
        """Ready messages of ``priority`` (``high``, ``normal`` or ``low``)."""
        return self.stats.ready[MessagePriority[priority.upper()]]


@dataclass(frozen=True)
class QueueRows:
    """One page of the queue list."""

    rows: list[QueueRow]
    next_cursor: str | None
    total: int
    """Queues in the index."""


@dataclass
class DashboardSources:
    """The dashboard's view of one deployment (one Redis and key prefix)."""

    redis: RedisClient
    coordinator: RedisMessageCoordinator
    registry: RedisAgentRegistry
    store: MessageStore | None = None
    samples: QueueSamples = field(default_factory=QueueSamples)
    breakers_dir: BreakerDirectory | None = None
    runs_admin: RunAdmin | None = None
    """Reads and cancels plan runs; a ``RunAdmin`` of ``plan_instance`` by default."""
    plan_instance: str = "default"
    """The ``PlanRuntime`` instance whose driver hears of a cancel from the dashboard."""
    runs: RunPages = field(init=False)
    """The plan runs, a page at a time (made from ``runs_admin``)."""
    interactions: InteractionPages = field(init=False)
    """Meetings and the conversations' directory, a page at a time (read-only)."""

    def __post_init__(self) -> None:
        if self.breakers_dir is None:
            self.breakers_dir = BreakerDirectory(self.redis, self.coordinator.keys)
        if self.runs_admin is None:
            self.runs_admin = RunAdmin(
                self.coordinator, instance=self.plan_instance, redis=self.redis
            )
        self.runs = RunPages(self.runs_admin, self.redis)
        # Never started: no handler workers, no meeting clock; the pages only read.
        self.interactions = InteractionPages(AgentMessaging(self.coordinator))

    @property
    def prefix(self) -> str:
        """The key prefix shown."""
        return self.coordinator.keys.prefix

    @property
    def has_history(self) -> bool:
        """Whether a store that tells message histories is configured."""
        return isinstance(self.store, MessageHistory)

    async def agent_groups(self) -> list[AgentGroup]:
        """Every registration (``list_registered``), grouped by agent type."""
        records = await self.registry.list_registered()
        now = datetime.now(UTC)
        groups: dict[str, list[AgentRecord]] = {}
        for record in records:
            groups.setdefault(record.agent_id.type, []).append(record)
        return [
            AgentGroup(
                type=name,
                records=members,
                heartbeat_ages=[
                    max((now - r.last_heartbeat).total_seconds(), 0.0) if r.last_heartbeat else None
                    for r in members
                ],
            )
            for name, members in sorted(groups.items())
        ]

    async def _row(self, stats: QueueStats, flow: QueueFlow) -> QueueRow:
        name = str(stats.agent_id)
        self.samples.record(name, depth=stats.unsettled, added=flow.entries_added, dead=stats.dead)
        rates = self.samples.rates(name)
        return QueueRow(
            stats=stats,
            flow=flow,
            depth_line=sparkline_points(self.samples.depths(name)),
            rate_line=sparkline_points(rates),
            rate=rates[-1] if rates else None,
        )

    async def queue_rows(
        self, *, cursor: str = "0", count: int = 50, contains: str | None = None
    ) -> QueueRows:
        """One page of queues with their counts, flow and sparklines."""
        keys = self.coordinator.keys
        page = await read_queue_page(
            self.redis, keys, cursor=cursor, count=count, contains=contains
        )
        rows = await self.queue_rows_of(page.queues)
        return QueueRows(rows, page.next_cursor, await count_queues(self.redis, keys))

    async def queue_rows_of(self, agent_ids: Sequence[AgentId]) -> list[QueueRow]:
        """The rows of the given queues."""
        stats = await asyncio.gather(*(self.coordinator.queue_stats(a) for a in agent_ids))
        flows = await read_queue_flows(self.redis, self.coordinator.keys, agent_ids)
        return [await self._row(s, flows[s.agent_id]) for s in stats]

    async def dead_letter_page(
        self,
        agent_id: AgentId,
        *,
        after: str | None = None,
        before: str | None = None,
        count: int = 50,
    ) -> DeadLetterPage:
        """One page of ``agent_id``'s dead letters."""
        return await read_dead_letter_page(
            self.redis, self.coordinator.keys, agent_id, after=after, before=before, count=count
        )

    async def dead_letter(
        self, agent_id: AgentId, dead_letter_id: str
    ) -> DeadLetter | UndecodableDeadLetter | None:
        """One dead letter, or None when it is gone."""
        return await read_dead_letter(self.redis, self.coordinator.keys, agent_id, dead_letter_id)

    async def breakers(self) -> list[BreakerRow]:
        """The shared circuit breakers found so far (see ``BreakerDirectory``)."""
        assert self.breakers_dir is not None
        return await self.breakers_dir.read()

    @property
    def breakers_complete(self) -> bool:
        """Whether the breaker list is known to be complete (one full scan finished)."""
        return self.breakers_dir is not None and self.breakers_dir.complete

    async def history(self, message_id: str) -> list[Any]:
        """The store's records of ``message_id`` (empty without a history store)."""
        if not isinstance(self.store, MessageHistory):
            return []
        return list(await self.store.get(message_id, with_events=True))
