"""``PostgresInteractionStore``: the durable record of agent conversations.

Implements the core's :class:`~tta_agent_coordination.interactions.InteractionStore`
on the tables of migration 0003 (organizations, conversations, conversation messages,
the ``inbox_messages`` view), in the schema and connection pool of a
:class:`PostgresMessageStore`::

    store = PostgresMessageStore(dsn, schema="agents")
    await store.migrate()
    messaging = AgentMessaging(coordinator, store=PostgresInteractionStore(store))

Every write is one idempotent statement (keyed by message id, conversation id, agent or
organization id), so a retried write records once. The history queries
(:meth:`PostgresInteractionStore.conversation`, :meth:`PostgresInteractionStore.inbox`)
answer from Postgres alone, also after Redis lost everything; ``AgentMessaging.restore``
uses :meth:`PostgresInteractionStore.unread_inbox` and
:meth:`PostgresInteractionStore.open_conversations` to bring that state back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tta_agent_coordination.interactions import (
    AgentProfile,
    ConversationMessage,
    InteractionStore,
    MessageKind,
    Organization,
)
from tta_agent_coordination.interactions.keys import pair_id
from tta_agent_coordination.models import AgentId
from tta_agent_coordination_postgres.store import PostgresMessageStore

__all__ = ["PostgresInteractionStore", "StoredConversation"]

_MESSAGE_COLUMNS = (
    "SELECT message_id, kind, conversation_id, sender, recipient, payload::text, sent_at"
    " FROM conversation_messages"
)


@dataclass(frozen=True, slots=True)
class StoredConversation:
    """One opening of a pair's sync conversation, as recorded."""

    conversation_id: str
    agent_a: AgentId
    agent_b: AgentId
    status: str


def _message(row: Sequence[Any]) -> ConversationMessage:
    return ConversationMessage(
        message_id=row[0],
        kind=MessageKind(row[1]),
        conversation_id=row[2],
        sender=AgentId.parse(row[3]),
        recipient=AgentId.parse(row[4]),
        payload=json.loads(row[5]) if row[5] is not None else None,
        sent_at=row[6],
    )


def _limit(limit: int) -> int:
    if not 1 <= limit <= 100_000:
        raise ValueError(f"limit must be between 1 and 100000, got {limit}")
    return limit


class PostgresInteractionStore(InteractionStore):
    """The conversation record, in the schema of ``store`` (migrated to version 3).

    Args:
        store: the message store whose schema and connection pool are used (not owned:
            close it yourself).
    """

    def __init__(self, store: PostgresMessageStore) -> None:
        self._store = store

    # --- writes (InteractionStore) ---------------------------------------------------------

    async def record_organization(self, organization: Organization) -> None:
        """Insert or update an organization."""
        async with self._store.transaction("record_organization") as conn:
            await conn.execute(
                "INSERT INTO organizations (org_id, name, accepts_from) VALUES (%s, %s, %s)"
                " ON CONFLICT (org_id) DO UPDATE SET name = excluded.name,"
                " accepts_from = excluded.accepts_from, updated_at = now()",
                (organization.org_id, organization.name, list(organization.accepts_from)),
            )

    async def record_agent(self, profile: AgentProfile) -> None:
        """Insert or update an agent's directory entry (its organization and name)."""
        agent = profile.agent_id
        async with self._store.transaction("record_agent") as conn:
            await conn.execute(
                "INSERT INTO agents (agent_id, agent_type, instance, name, org_id)"
                " VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (agent_id) DO UPDATE SET name = excluded.name,"
                " org_id = excluded.org_id",
                (str(agent), agent.type, agent.instance or "", profile.name, profile.organization),
            )

    async def record_conversation(
        self, conversation_id: str, a: AgentId, b: AgentId, status: str
    ) -> None:
        """Record an opening (``open``) or its end (``ended``); an end is final."""
        first, second = sorted((str(a), str(b)))
        async with self._store.transaction("record_conversation") as conn:
            await conn.execute(
                "INSERT INTO conversations (conversation_id, pair_id, agent_a, agent_b, status,"
                " ended_at) VALUES (%s, %s, %s, %s, %s,"
                " CASE WHEN %s = 'ended' THEN now() END)"
                " ON CONFLICT (conversation_id) DO UPDATE SET status = 'ended',"
                " ended_at = COALESCE(conversations.ended_at, now())"
                " WHERE excluded.status = 'ended'",
                (conversation_id, pair_id(a, b), first, second, status, status),
            )

    async def record_message(self, message: ConversationMessage) -> None:
        """Record a message once (a second record of its id changes nothing)."""
        async with self._store.transaction("record_message") as conn:
            await conn.execute(
                "INSERT INTO conversation_messages (message_id, kind, conversation_id,"
                " pair_id, sender, recipient, payload, sent_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s)"
                " ON CONFLICT (message_id) DO NOTHING",
                (
                    message.message_id,
                    message.kind.value,
                    message.conversation_id,
                    pair_id(message.sender, message.recipient),
                    str(message.sender),
                    str(message.recipient),
                    json.dumps(message.payload),
                    message.sent_at,
                ),
            )

    async def record_read(self, agent: AgentId, message_ids: Sequence[str]) -> None:
        """Mark these inbox messages of ``agent`` read (the first read counts)."""
        async with self._store.transaction("record_read") as conn:
            await conn.execute(
                "UPDATE conversation_messages SET read_at = now()"
                " WHERE recipient = %s AND message_id = ANY(%s) AND read_at IS NULL",
                (str(agent), list(message_ids)),
            )

    # --- reads ------------------------------------------------------------------------

    async def unread_inbox(self, agent: AgentId | None = None) -> list[ConversationMessage]:
        """The inbox messages not read yet (of one agent, or of all), oldest first."""
        query = _MESSAGE_COLUMNS + " WHERE kind = 'async' AND read_at IS NULL"
        params: tuple[Any, ...] = ()
        if agent is not None:
            query += " AND recipient = %s"
            params = (str(agent),)
        async with self._store.transaction("unread_inbox") as conn:
            cur = await conn.execute(query + " ORDER BY seq", params)
            return [_message(r) for r in await cur.fetchall()]

    async def open_conversations(self) -> list[StoredConversation]:
        """The conversations recorded as open, oldest first."""
        async with self._store.transaction("open_conversations") as conn:
            cur = await conn.execute(
                "SELECT conversation_id, agent_a, agent_b, status FROM conversations"
                " WHERE status = 'open' ORDER BY opened_at"
            )
            return [
                StoredConversation(r[0], AgentId.parse(r[1]), AgentId.parse(r[2]), r[3])
                for r in await cur.fetchall()
            ]

    async def conversation(
        self, agent_a: AgentId, agent_b: AgentId, *, limit: int = 1000
    ) -> list[ConversationMessage]:
        """Every message between the two agents (all kinds, every epoch), oldest first.

        The newest ``limit`` are returned.

        Raises:
            ValueError: ``limit`` is not between 1 and 100000.
        """
        async with self._store.transaction("conversation") as conn:
            cur = await conn.execute(
                "SELECT message_id, kind, conversation_id, sender, recipient, payload::text,"
                " sent_at FROM (SELECT * FROM conversation_messages WHERE pair_id = %s"
                " ORDER BY seq DESC LIMIT %s) AS t ORDER BY seq",
                (pair_id(agent_a, agent_b), _limit(limit)),
            )
            return [_message(r) for r in await cur.fetchall()]

    async def inbox(
        self, agent: AgentId, *, unread_only: bool = False, limit: int = 1000
    ) -> list[ConversationMessage]:
        """``agent``'s inbox messages (or only the unread ones), oldest first.

        Raises:
            ValueError: ``limit`` is not between 1 and 100000.
        """
        query = _MESSAGE_COLUMNS + " WHERE kind = 'async' AND recipient = %s"
        if unread_only:
            query += " AND read_at IS NULL"
        async with self._store.transaction("inbox") as conn:
            cur = await conn.execute(query + " ORDER BY seq LIMIT %s", (str(agent), _limit(limit)))
            return [_message(r) for r in await cur.fetchall()]

    async def organization_agents(self, org_id: str) -> list[AgentId]:
        """The agents recorded in an organization."""
        async with self._store.transaction("organization_agents") as conn:
            cur = await conn.execute(
                "SELECT agent_id FROM agents WHERE org_id = %s ORDER BY agent_id", (org_id,)
            )
            return [AgentId.parse(r[0]) for r in await cur.fetchall()]

    async def load_directory(self) -> tuple[list[Organization], list[AgentProfile]]:
        """Every recorded organization, and every agent recorded in one."""
        async with self._store.transaction("load_directory") as conn:
            cur = await conn.execute(
                "SELECT org_id, name, accepts_from, created_at FROM organizations ORDER BY org_id"
            )
            orgs = [
                Organization(org_id=r[0], name=r[1], accepts_from=tuple(r[2]), created_at=r[3])
                for r in await cur.fetchall()
            ]
            cur = await conn.execute(
                "SELECT agent_id, org_id, name, first_seen FROM agents"
                " WHERE org_id IS NOT NULL ORDER BY agent_id"
            )
            agents = [
                AgentProfile(
                    agent_id=AgentId.parse(r[0]),
                    organization=r[1],
                    name=r[2] or r[0],
                    created_at=r[3],
                )
                for r in await cur.fetchall()
            ]
        return orgs, agents
