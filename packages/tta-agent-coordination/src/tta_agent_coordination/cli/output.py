"""Printing results: rich tables for people, ``--json`` for scripts.

Results go to standard output; progress bars, warnings and errors go to standard error,
so ``tta-coord queues --json | jq`` always reads clean JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

__all__ = [
    "JSON_OPTION",
    "err_console",
    "format_time",
    "id_column",
    "out_console",
    "print_json",
    "print_json_line",
    "table_fits",
]

NARROW_COLUMN = 6
"""Width a column other than an id column needs to stay readable (``table_fits``)."""

JSON_OPTION: Any = typer.Option("--json", help="Print the result as JSON (for scripts).")
"""The ``--json`` option of the commands that print a result."""


def out_console() -> Console:
    """A console on the current standard output (wide enough that ids are not cut)."""
    return Console(highlight=False, soft_wrap=False)


def err_console() -> Console:
    """A console on the current standard error (progress bars, notes)."""
    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON (datetimes as ISO 8601)."""
    typer.echo(json.dumps(data, indent=2, default=_default, ensure_ascii=False))


def print_json_line(data: Any) -> None:
    """Print ``data`` as JSON on one line (one document per refresh of a watch)."""
    typer.echo(json.dumps(data, default=_default, ensure_ascii=False, separators=(",", ":")))


def id_column(table: Table, header: str, values: Iterable[str], **options: Any) -> None:
    """Add a column of ids to ``table``: as wide as its longest id, never wrapped or cut.

    Rich shrinks every column of a table wider than the terminal, cutting ids to
    ``calculator:de…`` in 80 columns; an id cut is useless, so the other columns (which
    fold) give way instead.
    """
    width = max((cell_len(value) for value in values), default=0)
    table.add_column(header, no_wrap=True, min_width=max(width, cell_len(header)), **options)


def table_fits(console: Console, table: Table) -> bool:
    """Whether ``table`` fits ``console`` with its id columns whole and the others readable."""
    needed = 1  # the left border
    for column in table.columns:
        needed += (column.min_width or NARROW_COLUMN) + 3  # padding and a border each
    return needed <= console.width


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
