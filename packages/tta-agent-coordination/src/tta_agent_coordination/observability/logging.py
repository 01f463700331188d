"""structlog helpers. The library only creates loggers; it never configures logging.

Applications (and the ``tta-coord`` CLI) call :func:`configure_logging` once at start-up.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from tta_agent_coordination.errors import ConfigurationError

__all__ = ["configure_logging", "get_logger"]


def get_logger(name: str, **context: Any) -> Any:
    """A structlog logger named ``name`` with ``context`` bound (agent, queue, ...)."""
    return structlog.get_logger(name).bind(**context)


def configure_logging(
    level: str = "INFO", *, json: bool = False, stream: TextIO | None = None
) -> None:
    """Set up structlog for an application: a human console format, or JSON lines.

    Only applications call this (``tta-coord`` does, from its ``--log-level`` and
    ``--json-logs`` options); the library never does. Events below ``level`` are dropped.

    Args:
        level: DEBUG, INFO, WARNING, ERROR or CRITICAL (case-insensitive).
        json: one JSON object per line (for log shippers) instead of the console format.
        stream: where logs go; the *current* ``sys.stderr`` at each write by default, so
            that standard output stays clean for command output.

    Raises:
        ConfigurationError: ``level`` is not a known level.
    """
    name = level.strip().upper()
    number = logging.getLevelNamesMapping().get("WARNING" if name == "WARN" else name)
    if number is None or name == "NOTSET":
        raise ConfigurationError(
            f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )

    def factory(*_args: Any) -> structlog.PrintLogger:
        # Resolved per logger rather than once, so a replaced sys.stderr (tests, runners
        # that capture output) is honoured and a closed one is never written to.
        return structlog.PrintLogger(stream if stream is not None else sys.stderr)

    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    # Tracebacks never show frame locals (structlog's default does): locals hold
    # payloads, credentials and Redis URLs with passwords, and rendering them costs
    # ~0.5 s per traceback, which stalls a worker whose handlers keep failing.
    if json:
        processors += [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(),
        ]
    else:
        target = stream if stream is not None else sys.stderr
        colors = bool(getattr(target, "isatty", lambda: False)())
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=colors,
                exception_formatter=structlog.dev.RichTracebackFormatter(
                    show_locals=False, color_system="truecolor" if colors else None
                ),
            )
        )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=factory,
        # Not cached: loggers bound at import time follow a later reconfiguration, and
        # structlog.testing.capture_logs keeps working.
        cache_logger_on_first_use=False,
    )
