"""Durable records of messages and agents: the ``MessageStore`` interface and its plumbing.

The core never imports a store implementation; the Postgres adapter
(``tta-agent-coordination-postgres``) implements :class:`MessageStore`. One module per job:

* :mod:`~tta_agent_coordination.store.events` -- what a store records (message lifecycle
  events and their ordering versions, agent events, pending messages);
* :mod:`~tta_agent_coordination.store.interface` -- the :class:`MessageStore` interface and
  the protocols around it (:class:`RestoreTarget`, :class:`StoreMetrics`);
* :mod:`~tta_agent_coordination.store.write_behind` -- how components hand events to a
  store: :class:`StoreWriter`, synchronously (``durability="sync"``) or through the
  bounded :class:`WriteBehindBatcher` (``durability="async"``);
* :mod:`~tta_agent_coordination.store.errors` -- the store's errors.

Every name is importable from here. See ``docs/durability.md``.
"""

from tta_agent_coordination.store.errors import (
    StoreError,
    StorePayloadError,
    StorePermissionError,
    StoreUnavailableError,
)
from tta_agent_coordination.store.events import (
    AgentEvent,
    AgentEventKind,
    LifecycleKind,
    MessageEvent,
    MessageStatus,
    PendingMessage,
)
from tta_agent_coordination.store.interface import MessageStore, RestoreTarget, StoreMetrics
from tta_agent_coordination.store.write_behind import (
    BatcherStats,
    Durability,
    StoreWriter,
    WriteBehindBatcher,
)

__all__ = [
    "AgentEvent",
    "AgentEventKind",
    "BatcherStats",
    "Durability",
    "LifecycleKind",
    "MessageEvent",
    "MessageStatus",
    "MessageStore",
    "PendingMessage",
    "RestoreTarget",
    "StoreError",
    "StoreMetrics",
    "StorePayloadError",
    "StorePermissionError",
    "StoreUnavailableError",
    "StoreWriter",
    "WriteBehindBatcher",
]
