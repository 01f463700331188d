"""Generate the command reference of ``docs/cli.md`` from the ``tta-coord`` commands.

The reference (every command's usage, help, arguments and options, with their
environment variables and defaults) sits between two markers in ``docs/cli.md``; the rest
of the page is written by hand. Run it after changing a command::

    uv run python scripts/gen_cli_docs.py            # rewrite docs/cli.md
    uv run python scripts/gen_cli_docs.py --check    # exit 1 when docs/cli.md is stale

``tests/test_cli_docs.py`` runs ``--check``, so a command changed without regenerating
fails CI. The commands come from ``build_app(plugins=False)`` plus the Postgres store's
``store`` group and tta-agents' ``tta`` group added explicitly, so that whatever else
happens to be installed (other plugins) never changes the page.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path
from typing import Any

import typer
import typer.main

from tta_agent_coordination.cli import build_app

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cli.md"
BEGIN = "<!-- BEGIN GENERATED: command reference (scripts/gen_cli_docs.py) -->"
END = "<!-- END GENERATED: command reference -->"
PROG = "tta-coord"


def reference_app() -> typer.Typer:
    """The root application the reference documents: built-ins, demo, ``store`` and ``tta``."""
    app = build_app(plugins=False)
    try:
        from tta_agent_coordination_postgres.cli import app as store_app
    except ImportError:  # the workspace always has it; a bare core install does not
        return app
    app.add_typer(store_app, name="store")
    try:
        from tta_agents.cli import app as tta_app
    except ImportError:  # likewise for the TTA extension package
        return app
    app.add_typer(tta_app, name="tta")
    return app


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _params_table(command: Any, ctx: Any) -> list[str]:
    """Arguments and options as ``--help`` shows them (env var, default and range too)."""
    rows: list[str] = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)  # None for a hidden option
        if record is None or param.name == "help":
            continue
        names, text = record
        rows.append(f"| `{_cell(names)}` | {_cell(text)} |")
    if not rows:
        return []
    return ["| argument / option | |", "|---|---|", *rows, ""]


def _description(command: Any) -> list[str]:
    text = inspect.cleandoc(command.help or "").split("\f", 1)[0].strip()
    return [text, ""] if text else []


def _section(command: Any, ctx: Any, depth: int) -> list[str]:
    usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
    lines = [
        f"{'#' * depth} `{ctx.command_path}`",
        "",
        "```text",
        usage,
        "```",
        "",
        *_description(command),
        *_params_table(command, ctx),
    ]
    if hasattr(command, "list_commands"):  # a group: its commands follow, one level down
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = sub.context_class(sub, info_name=name, parent=ctx)
            lines += _section(sub, sub_ctx, min(depth + 1, 4))
    return lines


def reference() -> str:
    """The generated Markdown, markers excluded."""
    # typer vendors its own click: the objects are used through their click-like API.
    root: Any = typer.main.get_command(reference_app())
    ctx = root.context_class(root, info_name=PROG)
    lines = [
        "Generated from the commands by `scripts/gen_cli_docs.py`; do not edit by hand.",
        "",
        *_section(root, ctx, 3),
    ]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def render(page: str) -> str:
    """``page`` with the text between the markers replaced by :func:`reference`."""
    try:
        head, rest = page.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
    except ValueError:
        raise SystemExit(f"{DOC} lacks the markers {BEGIN!r} ... {END!r}") from None
    return f"{head}{BEGIN}\n{reference()}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite ``docs/cli.md``, or with ``--check`` report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/cli.md is stale")
    args = parser.parse_args(argv)
    page = DOC.read_text(encoding="utf-8")
    wanted = render(page)
    if args.check:
        if wanted != page:
            sys.stderr.write(
                f"{DOC.relative_to(ROOT)} is stale: run `uv run python scripts/gen_cli_docs.py`\n"
            )
            return 1
        return 0
    if wanted != page:
        DOC.write_text(wanted, encoding="utf-8")
        sys.stderr.write(f"rewrote {DOC.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
