"""structlog helpers. The library only creates loggers; it never configures logging."""

from __future__ import annotations

from typing import Any

import structlog

__all__ = ["get_logger"]


def get_logger(name: str, **context: Any) -> Any:
    """A structlog logger named ``name`` with ``context`` bound (agent, queue, ...)."""
    return structlog.get_logger(name).bind(**context)
