"""Printing results: rich tables for people, ``--json`` for scripts.

Results go to standard output; progress bars, warnings and errors go to standard error,
so ``tta-coord queues --json | jq`` always reads clean JSON.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console

__all__ = ["JSON_OPTION", "err_console", "format_time", "out_console", "print_json"]

JSON_OPTION: Any = typer.Option("--json", help="Print JSON instead of a table.")
"""The ``--json`` option of listing commands."""


def out_console() -> Console:
    """A console on the current standard output (wide enough that ids are not cut)."""
    return Console(highlight=False, soft_wrap=False)


def err_console() -> Console:
    """A console on the current standard error (progress bars, notes)."""
    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON (datetimes as ISO 8601)."""
    typer.echo(json.dumps(data, indent=2, default=_default, ensure_ascii=False))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def format_time(value: datetime | None) -> str:
    """A timestamp for a table: UTC, to the second; ``-`` for None."""
    if value is None:
        return "-"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%SZ")
