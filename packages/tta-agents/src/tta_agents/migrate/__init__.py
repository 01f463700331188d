"""The legacy-key migration: from the original TTA layout (``ao:sched:…``) to the core's.

* :func:`legacy_report` lists what a deployment holds (read-only);
* :func:`migrate_keys` moves every queued, delayed, reserved and dead message into the
  new key space with its priority and attempts, exactly once even when re-run or
  interrupted, and reports what it cannot move.

Also on the command line: ``tta-coord tta legacy-report`` and ``tta-coord tta
migrate-keys [--dry-run]``. See ``docs/tta-key-migration.md``.
"""

from tta_agents.migrate.entries import EntrySource, Unmovable
from tta_agents.migrate.moving import (
    LEGACY_DEAD_HEADER,
    LEGACY_ERROR_HEADER,
    MigrationError,
    MigrationReport,
    MigrationTarget,
    QueueMigration,
    migrate_keys,
)
from tta_agents.migrate.report import (
    LegacyAgentState,
    LegacyQueueReport,
    LegacyReport,
    legacy_report,
)

__all__ = [
    "LEGACY_DEAD_HEADER",
    "LEGACY_ERROR_HEADER",
    "EntrySource",
    "LegacyAgentState",
    "LegacyQueueReport",
    "LegacyReport",
    "MigrationError",
    "MigrationReport",
    "MigrationTarget",
    "QueueMigration",
    "Unmovable",
    "legacy_report",
    "migrate_keys",
]
