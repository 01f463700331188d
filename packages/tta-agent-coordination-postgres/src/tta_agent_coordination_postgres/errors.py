"""Errors of the Postgres store (the rest of the family lives in the core's ``store``)."""

from __future__ import annotations

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.store import StoreError

__all__ = ["StoreConfigurationError", "StoreNotMigratedError"]


class StoreConfigurationError(StoreError, ConfigurationError):
    """The store was configured wrongly: an invalid DSN or schema name."""


class StoreNotMigratedError(StoreError):
    """The store's schema has no tables yet: run ``await store.migrate()``.

    Or, from a shell: ``tta-coord store migrate --dsn ... --schema ...``.
    """
