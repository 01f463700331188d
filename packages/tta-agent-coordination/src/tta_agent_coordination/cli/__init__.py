"""The ``tta-coord`` command-line interface (typer + rich).

Not imported by ``tta_agent_coordination`` itself: only ``tta-coord`` (or code that
imports this package) pays for typer and rich. See ``docs/cli.md``.

Plugins add sub-commands through the ``tta_agent_coordination.cli`` entry-point group
(see :mod:`tta_agent_coordination.cli.plugins`) and reach the shared settings with
:func:`get_state`.
"""

from .app import app, build_app, main
from .connect import CliState, get_state, open_redis, run_async
from .errors import CliError, CliUsageError
from .plugins import ENTRY_POINT_GROUP

__all__ = [
    "ENTRY_POINT_GROUP",
    "CliError",
    "CliState",
    "CliUsageError",
    "app",
    "build_app",
    "get_state",
    "main",
    "open_redis",
    "run_async",
]
