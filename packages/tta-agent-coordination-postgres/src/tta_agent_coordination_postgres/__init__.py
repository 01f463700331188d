"""tta-agent-coordination-postgres: Postgres as the durable record of messages and agents.

::

    from tta_agent_coordination import RedisMessageCoordinator
    from tta_agent_coordination_postgres import PostgresMessageStore

    async with PostgresMessageStore("postgresql://app@db/app", schema="agents") as store:
        await store.migrate()
        coordinator = RedisMessageCoordinator(redis, store=store, durability="async")

See ``docs/durability.md``.
"""

from tta_agent_coordination.store import (
    StoreError,
    StorePayloadError,
    StorePermissionError,
    StoreUnavailableError,
)
from tta_agent_coordination_postgres.conversations import (
    PostgresInteractionStore,
    StoredConversation,
)
from tta_agent_coordination_postgres.errors import StoreConfigurationError, StoreNotMigratedError
from tta_agent_coordination_postgres.meetings import PostgresMeetingStore
from tta_agent_coordination_postgres.models import (
    StoredAgent,
    StoredEvent,
    StoredMessage,
    StoreStats,
)
from tta_agent_coordination_postgres.plan_runs import (
    PostgresPlanRunStore,
    StoredRun,
    StoredRunEvent,
)
from tta_agent_coordination_postgres.store import DEFAULT_SCHEMA, PostgresMessageStore, migrations

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SCHEMA",
    "PostgresInteractionStore",
    "PostgresMeetingStore",
    "PostgresMessageStore",
    "PostgresPlanRunStore",
    "StoreConfigurationError",
    "StoreError",
    "StoreNotMigratedError",
    "StorePayloadError",
    "StorePermissionError",
    "StoreStats",
    "StoreUnavailableError",
    "StoredAgent",
    "StoredConversation",
    "StoredEvent",
    "StoredMessage",
    "StoredRun",
    "StoredRunEvent",
    "__version__",
    "migrations",
]
