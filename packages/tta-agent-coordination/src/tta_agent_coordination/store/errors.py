"""The errors of a message store (raised by implementations, and by the write-behind writer)."""

from __future__ import annotations

from tta_agent_coordination.errors import CoordinationError, MessageValidationError

__all__ = ["StoreError", "StorePayloadError", "StorePermissionError", "StoreUnavailableError"]


class StoreError(CoordinationError):
    """Base class of the errors of a message store."""


class StoreUnavailableError(StoreError):
    """The store could not be reached, or failed; nothing of the failed call was written."""


class StorePermissionError(StoreError):
    """The store's database user lacks a privilege the operation needs (nothing was written).

    Grant the user ``CREATE`` on the database (for ``migrate``) and read/write on the
    store's schema, or use a user that has them.
    """


class StorePayloadError(StoreError, MessageValidationError):
    """A message cannot be stored as it is (for example a NUL character in Postgres JSON).

    Raised before anything is sent or written, so nothing is half-recorded.
    """
