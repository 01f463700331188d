"""Every Redis key of agent conversations, in one place.

Each group of keys one script changes shares one Redis Cluster hash tag, and every tag
starts with ``_`` so it can never clash with a queue's ``{type:instance}`` tag (agent
names never start with ``_``)::

    <p>:{_dir}:orgs                         set    every organization id
    <p>:{_dir}:org:<org>                    hash   name, accepts_from (JSON list), created_ms
    <p>:{_dir}:org:<org>:agents             set    the agents of the organization
    <p>:{_dir}:agent:<type:instance>        hash   organization, name, created_ms

    <p>:{_conv:<cid>}:state                 hash   a, b, status, epoch, and per side
                                                   (a|b): wait_<s> (correlation id of the
                                                   wait), addr_<s> (reply inbox JSON),
                                                   picked_<s> (its message was taken),
                                                   until_<s> (when the wait stops counting:
                                                   its timeout, server clock)
    <p>:{_conv:<cid>}:log                   stream the pair's messages (MAXLEN ~ cap)

    <p>:{_inbox:<agent>}:unread             zset   message id -> arrival sequence
    <p>:{_inbox:<agent>}:from:<sender>      zset   the same, for one sender (may hold ids
                                                   already read: dropped lazily)
    <p>:{_inbox:<agent>}:body               hash   message id -> message JSON (unread only)
    <p>:{_inbox:<agent>}:log                stream every arrival (MAXLEN ~ cap): the wake-up
                                                   of ``wait_for_message``
    <p>:{_inbox:<agent>}:seen               zset   message id -> arrival ms (dedupe window)
    <p>:{_inbox:<agent>}:meta               hash   seq (arrival counter)

    <p>:{_mtg:<id>}:state                   hash   host, status, turn, speaker, speaker_seq,
                                                   deadline (ms, server clock), turn_ms,
                                                   max_turns, seq (join counter), created,
                                                   started, ended, end_reason, to_agent and
                                                   to_turn (the last timed-out turn)
    <p>:{_mtg:<id>}:members                 hash   agent -> invited | attending | left
    <p>:{_mtg:<id>}:order                   zset   attending agent -> join sequence (the
                                                   round-robin order)
    <p>:{_mtg:<id>}:events                  stream every event (MAXLEN ~ cap): the history
                                                   and the wake-up of waiters
    <p>:{_mtgidx}:due                       zset   meeting id -> a time (ms) at or before its
                                                   turn's deadline (the meeting clock's index)
    <p>:{_mtgidx}:all                       zset   meeting id -> creation ms (listing)

The directory is one slot (``{_dir}``) because registering an agent changes its own hash
and its organization's member set at once. A conversation is keyed by ``cid``, a digest
of its *sorted* pair (:func:`pair_id`), so both sides find the same keys; meetings (a
later feature) get their own ``{_mtg:<id>}`` tag beside these. The meeting index
(``{_mtgidx}``) is its own slot: it is a hint kept at or before each meeting's real
deadline (deadlines only grow), never the state.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId

__all__ = [
    "ConversationKeys",
    "InboxKeys",
    "InteractionKeys",
    "MeetingKeys",
    "check_meeting_id",
    "check_organization_id",
    "pair_id",
]

_ORG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_organization_id(org_id: str) -> str:
    """``org_id`` when it is a valid organization id (it becomes part of key names).

    Raises:
        ConfigurationError: not 1-128 letters, digits, ``_ . -`` starting with a letter
            or digit.
    """
    if not isinstance(org_id, str) or not _ORG_RE.fullmatch(org_id):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(
            f"invalid organization id {org_id!r}: use 1-128 letters, digits, '_', '.', '-'"
        )
    return org_id


_MEETING_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_meeting_id(meeting_id: str) -> str:
    """``meeting_id`` when it is a valid meeting id (it becomes part of key names).

    Raises:
        ConfigurationError: not 1-128 letters, digits, ``_ . -`` starting with a letter
            or digit.
    """
    if not isinstance(meeting_id, str) or not _MEETING_RE.fullmatch(meeting_id):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(
            f"invalid meeting id {meeting_id!r}: use 1-128 letters, digits, '_', '.', '-'"
        )
    return meeting_id


def pair_id(a: AgentId, b: AgentId) -> str:
    """The conversation id of the unordered pair ``{a, b}``: ``dm-`` + 24 hex digits."""
    first, second = sorted((str(a), str(b)))
    digest = hashlib.sha256(f"{first}\n{second}".encode()).hexdigest()[:24]
    return f"dm-{digest}"


@dataclass(frozen=True, slots=True)
class ConversationKeys:
    """The keys of one pair's conversation (one hash slot)."""

    state: str
    log: str


@dataclass(frozen=True, slots=True)
class InboxKeys:
    """The keys of one agent's inbox (one hash slot)."""

    base: str
    unread: str
    body: str
    log: str
    seen: str
    meta: str

    def from_sender(self, sender: str) -> str:
        """The unread zset of the messages from ``sender`` (``str(agent_id)``)."""
        return f"{self.base}:from:{sender}"


@dataclass(frozen=True, slots=True)
class MeetingKeys:
    """The keys of one meeting (one hash slot), in the order its scripts take them."""

    state: str
    members: str
    order: str
    events: str

    def all(self) -> list[str]:
        """``[state, members, order, events]``: the ``KEYS`` of every meeting script."""
        return [self.state, self.members, self.order, self.events]


@dataclass(frozen=True, slots=True)
class InteractionKeys:
    """Builds the interaction keys under one prefix (the coordinator's)."""

    prefix: str

    # --- directory ----------------------------------------------------------------------

    @property
    def organizations(self) -> str:
        """Set of every organization id."""
        return f"{self.prefix}:{{_dir}}:orgs"

    def organization(self, org_id: str) -> str:
        """Hash of one organization."""
        return f"{self.prefix}:{{_dir}}:org:{org_id}"

    def organization_agents(self, org_id: str) -> str:
        """Set of the agents (``str(agent_id)``) of one organization."""
        return f"{self.prefix}:{{_dir}}:org:{org_id}:agents"

    def agent(self, agent: AgentId | str) -> str:
        """Hash of one agent's directory entry."""
        return f"{self.prefix}:{{_dir}}:agent:{agent}"

    # --- conversations and inboxes ------------------------------------------------------

    def conversation(self, cid: str) -> ConversationKeys:
        """The keys of the conversation ``cid`` (see :func:`pair_id`)."""
        base = f"{self.prefix}:{{_conv:{cid}}}"
        return ConversationKeys(state=f"{base}:state", log=f"{base}:log")

    def inbox(self, agent: AgentId | str) -> InboxKeys:
        """The keys of ``agent``'s inbox."""
        base = f"{self.prefix}:{{_inbox:{agent}}}"
        return InboxKeys(
            base=base,
            unread=f"{base}:unread",
            body=f"{base}:body",
            log=f"{base}:log",
            seen=f"{base}:seen",
            meta=f"{base}:meta",
        )

    # --- meetings -----------------------------------------------------------------------

    def meeting(self, meeting_id: str) -> MeetingKeys:
        """The keys of the meeting ``meeting_id``."""
        base = f"{self.prefix}:{{_mtg:{meeting_id}}}"
        return MeetingKeys(
            state=f"{base}:state",
            members=f"{base}:members",
            order=f"{base}:order",
            events=f"{base}:events",
        )

    @property
    def meetings_due(self) -> str:
        """Zset: meeting id -> a time (ms) at or before its current turn's deadline."""
        return f"{self.prefix}:{{_mtgidx}}:due"

    @property
    def meetings_all(self) -> str:
        """Zset: meeting id -> creation time (ms), for listing."""
        return f"{self.prefix}:{{_mtgidx}}:all"
