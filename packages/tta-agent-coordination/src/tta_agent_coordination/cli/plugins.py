"""Sub-commands contributed by other packages through entry points.

A package adds a command group to ``tta-coord`` by declaring, in its ``pyproject.toml``::

    [project.entry-points."tta_agent_coordination.cli"]
    store = "tta_agent_coordination_postgres.cli:app"   # a typer.Typer

The entry point's name is the sub-command (``tta-coord store ...``). A plugin that fails
to load, is not a ``typer.Typer``, or takes a built-in command's name is skipped with a
warning on stderr; it never breaks the CLI.
"""

from __future__ import annotations

from collections.abc import Collection

import typer

from tta_agent_coordination.plugins import CLI_GROUP, PluginError, discover

from .errors import warn

__all__ = ["ENTRY_POINT_GROUP", "load_plugins"]

ENTRY_POINT_GROUP = CLI_GROUP
"""The entry-point group scanned for ``tta-coord`` sub-commands."""

# One warning per problem per process, however often an app is built.
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warn(message)


def load_plugins(app: typer.Typer, *, reserved: Collection[str] = ()) -> list[str]:
    """Add every sub-command of the ``tta_agent_coordination.cli`` group to ``app``.

    Args:
        app: the root application.
        reserved: names already taken by built-in commands.

    Returns:
        The names of the sub-commands added.
    """
    added: list[str] = []
    try:
        found = discover(ENTRY_POINT_GROUP)
    except Exception as exc:  # a broken installed distribution must not break the CLI
        _warn_once(f"could not list tta-coord plugins: {exc}")
        return added
    for ep in found:
        if ep.name in reserved or ep.name in added:
            _warn_once(f"{ep.describe()} skipped: the command name {ep.name!r} is taken")
            continue
        try:
            obj = ep.load()
        except PluginError as exc:  # its message names the plugin and the cause
            _warn_once(str(exc))
            continue
        if not isinstance(obj, typer.Typer):
            _warn_once(f"{ep.describe()} is a {type(obj).__name__}, not a typer.Typer; skipped")
            continue
        app.add_typer(obj, name=ep.name)
        added.append(ep.name)
    return added
