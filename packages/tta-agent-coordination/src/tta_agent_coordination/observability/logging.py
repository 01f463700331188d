"""structlog helpers. The library only creates loggers; it never configures logging.

Applications (and the ``tta-coord`` CLI) call :func:`configure_logging` once at start-up.

A guest in its host: while the host has not configured structlog, the library's events go
to the standard :mod:`logging` tree under their module's name (``tta_agent_coordination.…``)
rather than to structlog's default, which prints every event, with rich tracebacks and
their frame locals, on standard output. An unconfigured host thus sees only warnings and
errors, on standard error (``logging.lastResort``), and routes or silences them with
ordinary ``logging`` configuration. Once the host calls ``structlog.configure`` (or
:func:`configure_logging`), every event follows that configuration instead.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from tta_agent_coordination.errors import ConfigurationError

__all__ = ["LibraryLogger", "configure_logging", "get_logger"]


def _event_first(
    _logger: Any, _method: str, event_dict: structlog.typing.EventDict
) -> tuple[tuple[str], dict[str, Any]]:
    """``event key=value ...`` as the record's message; ``exc_info`` left to ``logging``.

    The traceback is rendered by the host's ``logging`` formatter, plainly and once.
    """
    exc_info = event_dict.pop("exc_info", None)
    event = str(event_dict.pop("event", ""))
    rest = " ".join(f"{key}={value!r}" for key, value in event_dict.items())
    return ((f"{event} {rest}" if rest else event),), {"exc_info": exc_info}


_STDLIB_PROCESSORS: list[structlog.typing.Processor] = [
    structlog.stdlib.filter_by_level,  # first: a disabled level costs no rendering
    structlog.contextvars.merge_contextvars,
    _event_first,
]


class LibraryLogger:
    """The library's logger: structlog when the host configured it, else ``logging``.

    It binds context like a structlog logger (``bind``, ``unbind``, ``new``) and decides
    where each event goes when it is logged, so a host that configures structlog after
    importing the library is still followed (see the module docstring).
    """

    __slots__ = ("_context", "_name")

    def __init__(self, name: str, context: dict[str, Any] | None = None) -> None:
        self._name = name
        self._context: dict[str, Any] = dict(context or {})

    @property
    def name(self) -> str:
        """The logger's name (a module path under ``tta_agent_coordination``)."""
        return self._name

    def bind(self, **values: Any) -> LibraryLogger:
        """A logger with ``values`` added to the context of every event."""
        return LibraryLogger(self._name, {**self._context, **values})

    def unbind(self, *keys: str) -> LibraryLogger:
        """A logger without ``keys`` in its context (missing keys are ignored)."""
        return LibraryLogger(self._name, {k: v for k, v in self._context.items() if k not in keys})

    def new(self, **values: Any) -> LibraryLogger:
        """A logger whose context is exactly ``values``."""
        return LibraryLogger(self._name, values)

    def _target(self) -> Any:
        if structlog.is_configured():
            return structlog.get_logger(self._name).bind(**self._context)
        return structlog.wrap_logger(
            logging.getLogger(self._name),
            processors=_STDLIB_PROCESSORS,
            wrapper_class=structlog.stdlib.BoundLogger,
            context_class=dict,
        ).bind(**self._context)

    def __getattr__(self, method: str) -> Any:
        # debug/info/warning/error/exception/critical/msg/log: resolved at each call.
        if method.startswith("_"):
            raise AttributeError(method)
        return getattr(self._target(), method)

    def __repr__(self) -> str:
        return f"LibraryLogger({self._name!r}, {self._context!r})"


def get_logger(name: str, **context: Any) -> LibraryLogger:
    """The library's logger named ``name`` with ``context`` bound (agent, queue, ...)."""
    return LibraryLogger(name, context)


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
