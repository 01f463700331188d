"""``AgentMessaging``: organizations, agents, handlers and the three ways agents talk.

Built on a :class:`~tta_agent_coordination.redis.RedisMessageCoordinator`: handlers are
fed by the coordinator's queues (leases, retries, redelivery after a crash), answers
travel through its reply inboxes, waits go through its ``StreamWaiter``; the state of
conversations and inboxes is kept under the coordinator's prefix (``keys.py``). See
docs/conversations.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.interactions.directory import Directory
from tta_agent_coordination.interactions.handlers import ConversationHandler, HandlerHost
from tta_agent_coordination.interactions.inbox import AsyncConversation
from tta_agent_coordination.interactions.keys import InteractionKeys
from tta_agent_coordination.interactions.lua import InteractionScripts
from tta_agent_coordination.interactions.meeting_clock import MeetingClock
from tta_agent_coordination.interactions.meeting_models import (
    MeetingEvent,
    MeetingEventType,
    MeetingStatus,
)
from tta_agent_coordination.interactions.meetings import MeetingEventHandler, Meetings
from tta_agent_coordination.interactions.models import (
    AgentProfile,
    ConversationMessage,
    Organization,
    RestoreReport,
)
from tta_agent_coordination.interactions.one_way import OneWayMessenger
from tta_agent_coordination.interactions.store import InteractionStore, MeetingStore
from tta_agent_coordination.interactions.sync import SyncConversation
from tta_agent_coordination.interfaces import AgentRegistry
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

__all__ = ["AgentMessaging"]


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigurationError(f"{name} must be > 0, got {value}")


class AgentMessaging:
    """Agent conversations over a coordinator: ``async with AgentMessaging(c) as m: ...``.

    Args:
        coordinator: the coordinator whose queues, reply inboxes and prefix are used
            (not owned: never closed here).
        registry: handlers' workers register their agent there (then one process
            serves an agent id); None lets any number of processes serve one agent.
        store: records organizations, agents, conversations and messages
            (:class:`InteractionStore`, e.g. the Postgres store's).
        max_payload_bytes: largest payload, JSON-encoded.
        inbox_max_unread: most unread messages an inbox holds (then ``InboxFullError``).
        log_cap: about how many entries a pair's log and an inbox's arrival stream keep.
        retention_s: how long an idle conversation or inbox is kept in Redis.
        ended_retention_s: how long an ended conversation's state is kept.
        dedupe_window_s: how long an inbox remembers message ids it received.
        handler_visibility_timeout: seconds a handler's message stays leased before a
            process that died with it loses it to another (extended while it runs).
        handler_concurrency: handlers run at once per registered agent.
        meeting_events_cap: about how many events Redis keeps per meeting (the store,
            if it records meetings, keeps them all).
        meeting_clock: run a :class:`MeetingClock` while started (``async with``), so
            that this process also times out turns of meetings nobody watches.

    Raises:
        ConfigurationError: a setting is out of range.
    """

    def __init__(
        self,
        coordinator: RedisMessageCoordinator,
        *,
        registry: AgentRegistry | None = None,
        store: InteractionStore | None = None,
        max_payload_bytes: int = 256 * 1024,
        inbox_max_unread: int = 10_000,
        log_cap: int = 1_000,
        retention_s: float = 7 * 86_400,
        ended_retention_s: float = 3_600,
        dedupe_window_s: float = 600,
        handler_visibility_timeout: float = 30.0,
        handler_concurrency: int = 8,
        meeting_events_cap: int = 10_000,
        meeting_clock: bool = False,
    ) -> None:
        for name, value in (
            ("max_payload_bytes", max_payload_bytes),
            ("inbox_max_unread", inbox_max_unread),
            ("log_cap", log_cap),
            ("retention_s", retention_s),
            ("ended_retention_s", ended_retention_s),
            ("dedupe_window_s", dedupe_window_s),
            ("handler_visibility_timeout", handler_visibility_timeout),
            ("handler_concurrency", handler_concurrency),
            ("meeting_events_cap", meeting_events_cap),
        ):
            _positive(name, value)
        self.coordinator = coordinator
        """The coordinator this runs on."""
        self.store = store
        """The record, if any."""
        self.max_payload_bytes = int(max_payload_bytes)
        self.inbox_max_unread = int(inbox_max_unread)
        self.log_cap = int(log_cap)
        self.retention_ms = int(retention_s * 1000)
        self.ended_retention_ms = int(ended_retention_s * 1000)
        self.dedupe_window_ms = int(dedupe_window_s * 1000)
        self.keys = InteractionKeys(coordinator.keys.prefix)
        self.redis: RedisClient = coordinator.redis
        self.scripts = InteractionScripts(self.redis)
        self.directory = Directory(self.redis, self.keys, self.scripts)
        self.handlers = HandlerHost(
            self,
            registry,
            visibility_timeout=handler_visibility_timeout,
            concurrency=handler_concurrency,
        )
        self._one_way = OneWayMessenger(self)
        self._sync = SyncConversation(self)
        self._async = AsyncConversation(self)
        self._meeting = Meetings(self, events_cap=int(meeting_events_cap))
        self._clock = MeetingClock(self) if meeting_clock else None
        self._clock_stop = asyncio.Event()
        self._clock_task: asyncio.Task[None] | None = None
        self._log = get_logger(__name__, prefix=coordinator.keys.prefix)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving the registered handlers (``async with`` does it).

        With ``meeting_clock=True`` the meeting clock starts too.
        """
        await self.handlers.start()
        if self._clock is not None and self._clock_task is None:
            self._clock_stop.clear()
            self._clock_task = asyncio.create_task(
                self._clock.run(self._clock_stop), name="tta-meeting-clock"
            )

    async def aclose(self, grace_period: float | None = None) -> None:
        """Stop the handlers' workers and the meeting clock (the coordinator stays open)."""
        if self._clock_task is not None:
            self._clock_stop.set()
            await self._clock_task
            self._clock_task = None
        await self.handlers.stop(grace_period)

    async def __aenter__(self) -> AgentMessaging:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the three ways to talk -----------------------------------------------------------

    @property
    def one_way(self) -> OneWayMessenger:
        """Fire-and-forget messages to handlers."""
        return self._one_way

    @property
    def sync_conversation(self) -> SyncConversation:
        """``send_and_wait`` / ``reply`` / ``end_conversation``."""
        return self._sync

    @property
    def async_conversation(self) -> AsyncConversation:
        """Inboxes: ``send``, ``get_unread_messages``, ``wait_for_message``, ..."""
        return self._async

    @property
    def meeting_clock(self) -> MeetingClock | None:
        """The meeting clock this messaging runs (``meeting_clock=True``), else None."""
        return self._clock

    @property
    def meeting(self) -> Meetings:
        """Turn-based meetings: ``create_meeting``, ``speak``, ``wait_for_turn``, ..."""
        return self._meeting

    def register_event_handler(
        self, event_type: MeetingEventType
    ) -> Callable[[MeetingEventHandler], MeetingEventHandler]:
        """Decorator: call the function for each meeting event of ``event_type``.

        Called for the events this process's meeting calls add (see
        :meth:`Meetings.add_event_handler`); a handler that raises is logged.
        """

        def register(fn: MeetingEventHandler) -> MeetingEventHandler:
            self._meeting.add_event_handler(event_type, fn)
            return fn

        return register

    # --- directory ----------------------------------------------------------------------

    async def register_organization(
        self, org_id: str, name: str | None = None, *, accepts_from: Sequence[str] = ()
    ) -> Organization:
        """Register (or update) an organization; see :class:`Directory`."""
        org = await self.directory.register_organization(org_id, name, accepts_from=accepts_from)
        if self.store is not None:
            await self._record("organization", self.store.record_organization(org))
        return org

    async def register_agent(
        self, agent_id: AgentId, *, organization: str, name: str | None = None
    ) -> AgentProfile:
        """Register ``agent_id`` in ``organization``.

        Raises:
            OrganizationNotFoundError: the organization is not registered.
        """
        profile = await self.directory.register_agent(
            agent_id, organization=organization, name=name
        )
        if self.store is not None:
            await self._record("agent", self.store.record_agent(profile))
        return profile

    async def get_organization(self, org_id: str) -> Organization:
        """One organization (``OrganizationNotFoundError`` if unknown)."""
        return await self.directory.get_organization(org_id)

    async def get_agent(self, agent_id: AgentId) -> AgentProfile:
        """One agent's entry (``AgentNotFoundError`` if unknown)."""
        return await self.directory.get_agent(agent_id)

    async def list_agents(self, organization: str) -> list[AgentId]:
        """The agents of an organization."""
        return await self.directory.list_agents(organization)

    # --- handlers -----------------------------------------------------------------------

    def register_handler(
        self, agent_id: AgentId
    ) -> Callable[[ConversationHandler], ConversationHandler]:
        """Decorator: run the function for every message to ``agent_id`` in this process.

        Register before ``async with`` (or call :meth:`add_handler` after).

        Raises:
            ConfigurationError: ``agent_id`` already has a handler in this process, or
                the messaging already runs (use :meth:`add_handler`).
        """

        def register(fn: ConversationHandler) -> ConversationHandler:
            if self.handlers.running:
                raise ConfigurationError(
                    "AgentMessaging runs: use 'await messaging.add_handler(...)'"
                )
            self.handlers.add_nowait(agent_id, fn)
            return fn

        return register

    async def add_handler(self, agent_id: AgentId, fn: ConversationHandler) -> None:
        """Register ``fn`` for ``agent_id``, starting its worker if the messaging runs."""
        await self.handlers.add(agent_id, fn)

    # --- the record ---------------------------------------------------------------------

    async def restore(self) -> RestoreReport:
        """Bring the directory, unread inbox messages and open conversations back.

        From the store, after Redis lost them.

        Idempotent: what Redis still holds is left as it is (an inbox message whose id
        is unread or within the dedupe window, a pair with state). A restored inbox
        message is timed on its new arrival; a restored conversation is open with its
        recorded epoch and no wait (the waiters' reply inboxes were lost with Redis:
        they time out). With a store that records meetings, open meetings come back
        too, their current turn restarted with a full turn duration.

        Raises:
            ConfigurationError: there is no store.
        """
        if self.store is None:
            raise ConfigurationError("restore needs AgentMessaging(store=...)")
        organizations, agents = await self.store.load_directory()
        for org in organizations:
            await self.directory.register_organization(
                org.org_id, org.name, accepts_from=org.accepts_from
            )
        for profile in agents:
            await self.directory.register_agent(
                profile.agent_id, organization=profile.organization, name=profile.name
            )
        messages = 0
        for message in await self.store.unread_inbox():
            outcome, _ = await self._async.append(message)
            messages += outcome == "ok"
        conversations = 0
        for conv in await self.store.open_conversations():
            cid, _, epoch = conv.conversation_id.rpartition("-")
            first, second = sorted((str(conv.agent_a), str(conv.agent_b)))
            restored = await self.scripts.run(
                "conv_restore",
                [self.keys.conversation(cid).state],
                [first, second, epoch, self.retention_ms],
            )
            conversations += int(restored)
        meetings = 0
        if isinstance(self.store, MeetingStore):
            meetings = await self._meeting.restore(await self.store.open_meetings())
        report = RestoreReport(
            organizations=len(organizations),
            agents=len(agents),
            inbox_messages=messages,
            conversations=conversations,
            meetings=meetings,
        )
        self._log.info("interactions_restored", **report.model_dump())
        return report

    async def record_message(self, message: ConversationMessage) -> None:
        """Write ``message`` to the store, if any (a failing store is logged)."""
        if self.store is not None:
            await self._record("message", self.store.record_message(message))

    async def record_read(self, agent: AgentId, message_ids: list[str]) -> None:
        """Record inbox reads in the store, if any."""
        if self.store is not None:
            await self._record("read", self.store.record_read(agent, message_ids))

    async def record_conversation(self, conversation_id: str, a: str, b: str, status: str) -> None:
        """Record a conversation's status in the store, if any."""
        if self.store is not None:
            await self._record(
                "conversation",
                self.store.record_conversation(
                    conversation_id, AgentId.parse(a), AgentId.parse(b), status
                ),
            )

    async def record_meeting(self, status: MeetingStatus) -> None:
        """Record a meeting and its participants, if the store records meetings."""
        if isinstance(self.store, MeetingStore):
            await self._record("meeting", self.store.record_meeting(status))

    async def record_meeting_event(self, event: MeetingEvent) -> None:
        """Record a meeting event, if the store records meetings."""
        if isinstance(self.store, MeetingStore):
            await self._record("meeting_event", self.store.record_meeting_event(event))

    async def _record(self, what: str, write: Any) -> None:
        # Redis holds the live state; the store is the record. A store that fails must
        # not fail the conversation: the failure is logged for an operator.
        try:
            await write
        except Exception as exc:  # any store failure is logged, not raised
            self._log.warning("interaction_record_failed", what=what, error=str(exc))
