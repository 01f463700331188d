"""Every Redis key name the library uses, in one place.

All keys of one agent's queue share the Redis Cluster hash tag ``{type:instance}`` (a
type-wide queue, "any instance of the type", the tag ``{type}``: the same keys under
it, used by the same scripts), so a Lua script that changes a queue only ever touches
one slot::

    <prefix>:{<type>:<instance>}:ready:<9|5|1>   stream of ready + leased messages, per priority
    <prefix>:{<type>:<instance>}:leases          zset  token -> lease deadline (ms, server clock)
    <prefix>:{<type>:<instance>}:delayed         zset  message_id -> due time (ms) for retries
    <prefix>:{<type>:<instance>}:delayed:data    hash  message_id -> envelope of a delayed message
    <prefix>:{<type>:<instance>}:dlq             stream of dead letters (bounded by MAXLEN)
    <prefix>:{<type>:<instance>}:dedupe          zset  message_id -> dedupe expiry (ms, +inf)
    <prefix>:{<type>:<instance>}:wake            stream (MAXLEN 1, expiring) written when the
                                                  earliest due time of ``delayed`` moves earlier
    <prefix>:{<type>}:lessees                    hash  token -> instance holding the lease (a
                                                  type queue's leases taken by a worker)
    <prefix>:{<type>}:lessees:index              zset  "<instance> <token>", score 0: an
                                                  instance's leases by lexicographic range

The two lessee keys are named under every tag but only a type queue's receives (a worker
passing its instance) write them; every script that drops a lease drops its record, so
they hold at most one entry per lease.

Keys outside any queue carry tags that cannot clash with a queue's (agent names never
start with ``_``)::

    <prefix>:queues                               set   every queue seen ("type:instance", "type")
    <prefix>:{_subs}:by_type:<message_type>       set   agents subscribed to a message type
    <prefix>:{_subs}:index                        hash  subscription_id -> subscription JSON
    <prefix>:{_reply:<inbox>}:inbox               list  replies awaited by one requester (expiring)
    <prefix>:{_registry}:...                      registry keys (one slot: scripts span agents)
    <prefix>:{_breaker:<name>}:state              hash  shared circuit-breaker state
    <prefix>:{_store}:marker                      string the store recording this deployment
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId, MessagePriority, MessageType

__all__ = [
    "CONSUMER_GROUP",
    "CONSUMER_NAME",
    "PRIORITIES_HIGH_FIRST",
    "KeySpace",
    "QueueKeys",
]

CONSUMER_GROUP = "workers"
"""The consumer group created on every ready stream (the queue scripts' ``ARGV[1]``)."""

CONSUMER_NAME = "lease"
"""The one consumer name used for every reservation (the queue scripts' ``ARGV[2]``).

Leases are tracked in the ``leases`` zset, not by consumer, so one fixed name keeps the
group's consumer list from growing with every process that ever received. Both names
are defined here only: ``redis/scripts/queue_common.py`` passes them to every script.
"""

PRIORITIES_HIGH_FIRST: tuple[MessagePriority, ...] = (
    MessagePriority.HIGH,
    MessagePriority.NORMAL,
    MessagePriority.LOW,
)
"""Priorities in delivery order; the ready streams are passed to scripts in this order."""

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.\-:]{1,64}$")


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The keys of one agent's queue (or of a type queue: ``agent_id`` is type-wide)."""

    agent_id: AgentId
    tag: str
    ready: tuple[str, str, str]
    """Ready streams, highest priority first (same order as ``PRIORITIES_HIGH_FIRST``)."""
    leases: str
    delayed: str
    delayed_data: str
    dlq: str
    dedupe: str
    wake: str
    """Stream a blocked receive waits on beside the ready streams: the scripts that add to
    ``delayed`` append to it when the queue's earliest due time moves earlier (a retry or a
    scheduled send due before anything already waiting), so a parked worker wakes for it."""
    lessees: str
    """Hash of lease token to the instance (``str(AgentId)``) that holds it: written by a
    receive on a type queue that names its consumer, so ``release_leases(instance)`` can
    hand that instance's leases over at once instead of waiting for them to expire."""
    lessee_index: str
    """Sorted set of ``"<instance> <token>"`` (score 0): one instance's leases by a
    lexicographic range (``ZRANGEBYLEX``), kept in step with ``lessees``."""
    all_keys: tuple[str, ...] = field(repr=False)
    """Every key of the queue in the fixed order the Lua scripts expect."""

    def ready_for(self, priority: MessagePriority) -> str:
        """The ready stream of ``priority``."""
        return self.ready[PRIORITIES_HIGH_FIRST.index(priority)]

    @property
    def replication_mark(self) -> str:
        """A short-lived key: its write lets ``WAIT`` confirm a duplicate send.

        A duplicate writes nothing itself; see ``redis/replication.py``.
        """
        return f"{self.tag}:replmark"


@dataclass(frozen=True)
class KeySpace:
    """Builds key names under one prefix (``ao`` by default, as in TTA)."""

    prefix: str = "ao"

    def __post_init__(self) -> None:
        if not _PREFIX_RE.fullmatch(self.prefix):
            raise ConfigurationError(
                f"invalid key prefix {self.prefix!r}: use 1-64 characters from letters, "
                "digits, '_', '.', '-', ':' (no braces or glob characters)"
            )

    def queue(self, agent_id: AgentId) -> QueueKeys:
        """The keys of ``agent_id``'s queue (the type queue ``{type}`` for a type-wide id)."""
        return _queue_keys(self.prefix, agent_id)

    @property
    def queue_index(self) -> str:
        """Set of every queue (``str(agent_id)``: ``type:instance`` or ``type``) sent to."""
        return f"{self.prefix}:queues"

    def subscribers(self, message_type: MessageType) -> str:
        """Set of the agents subscribed to ``message_type``."""
        return f"{self.prefix}:{{_subs}}:by_type:{message_type.value}"

    @property
    def subscriptions(self) -> str:
        """Hash of subscription id to subscription JSON."""
        return f"{self.prefix}:{{_subs}}:index"

    def reply_inbox(self, inbox_id: str) -> str:
        """List of replies awaited by one requester (bounded, expiring)."""
        return f"{self.prefix}:{{_reply:{inbox_id}}}:inbox"

    @property
    def store_marker(self) -> str:
        """String naming the message store that records this prefix (``store_marker.py``)."""
        return f"{self.prefix}:{{_store}}:marker"

    # --- agent registry: every key in the {_registry} slot -------------------------------

    @property
    def registry_tag(self) -> str:
        """Common head of every registry key (one hash slot, so scripts may span agents)."""
        return f"{self.prefix}:{{_registry}}"

    def registry_agent(self, agent_id: AgentId) -> str:
        """Hash holding one agent's record (a type-wide id: its default instance's)."""
        return f"{self.registry_tag}:agent:{agent_id.concrete()}"

    def registry_state(self, agent_id: AgentId) -> str:
        """String holding the state an agent exported (kept longer than its liveness)."""
        return f"{self.registry_tag}:state:{agent_id.concrete()}"

    @property
    def registry_liveness(self) -> str:
        """Sorted set of ``type:instance`` scored by liveness expiry (ms, server clock)."""
        return f"{self.registry_tag}:alive"

    def registry_capability(self, capability: str) -> str:
        """Set of the agents that advertise ``capability``."""
        return f"{self.registry_tag}:cap:{capability}"

    def registry_type(self, agent_type: str) -> str:
        """Set of the registered instances of ``agent_type``."""
        return f"{self.registry_tag}:type:{agent_type}"

    @property
    def registry_events(self) -> str:
        """Bounded stream of registry events."""
        return f"{self.registry_tag}:events"

    @property
    def registry_agent_head(self) -> str:
        """Head of every agent hash: ``registry_agent(a) == registry_agent_head + str(a)``.

        Registry scripts that span agents build an agent's hash name from the liveness
        set's member (``type:instance``) with it.
        """
        return f"{self.registry_tag}:agent:"

    # --- circuit breakers -------------------------------------------------------------

    def breaker_state(self, name: str) -> str:
        """Hash holding the shared state of circuit breaker ``name``."""
        return f"{self.prefix}:{{_breaker:{name}}}:state"

    @property
    def breaker_scan_pattern(self) -> str:
        """A SCAN pattern matching the shared state hash of every circuit breaker."""
        return f"{self.prefix}:{{_breaker:*}}:state"

    def breaker_from_key(self, key: str) -> str | None:
        """The breaker name of a ``breaker_state`` key, or None for any other key."""
        head, tail = f"{self.prefix}:{{_breaker:", "}:state"
        if not (key.startswith(head) and key.endswith(tail)) or len(key) <= len(head + tail):
            return None
        return key[len(head) : -len(tail)]

    @property
    def queue_scan_pattern(self) -> str:
        """A SCAN pattern matching one key (the NORMAL ready stream) of every queue."""
        return f"{self.prefix}:{{*}}:ready:{MessagePriority.NORMAL.value}"

    @property
    def dedupe_scan_pattern(self) -> str:
        """A SCAN pattern matching the dedupe set of every queue."""
        return f"{self.prefix}:{{*}}:dedupe"

    def agent_from_key(self, key: str) -> AgentId | None:
        """The agent whose queue owns ``key``, or None for a key outside any queue.

        A type queue's key (tag ``{type}``) gives the type-wide id.
        """
        head = f"{self.prefix}:{{"
        if not key.startswith(head):
            return None
        tag, sep, _ = key[len(head) :].partition("}")
        if not sep or tag.startswith("_"):
            return None
        try:
            return AgentId.parse(tag)
        except ValueError:
            return None


@lru_cache(maxsize=4096)
def _queue_keys(prefix: str, agent_id: AgentId) -> QueueKeys:
    tag = f"{prefix}:{{{agent_id}}}"
    ready = (
        f"{tag}:ready:{MessagePriority.HIGH.value}",
        f"{tag}:ready:{MessagePriority.NORMAL.value}",
        f"{tag}:ready:{MessagePriority.LOW.value}",
    )
    leases = f"{tag}:leases"
    delayed = f"{tag}:delayed"
    delayed_data = f"{tag}:delayed:data"
    dlq = f"{tag}:dlq"
    dedupe = f"{tag}:dedupe"
    wake = f"{tag}:wake"
    lessees = f"{tag}:lessees"
    lessee_index = f"{tag}:lessees:index"
    return QueueKeys(
        agent_id=agent_id,
        tag=tag,
        ready=ready,
        leases=leases,
        delayed=delayed,
        delayed_data=delayed_data,
        dlq=dlq,
        dedupe=dedupe,
        wake=wake,
        lessees=lessees,
        lessee_index=lessee_index,
        all_keys=(*ready, leases, delayed, delayed_data, dlq, dedupe, wake, lessees, lessee_index),
    )
