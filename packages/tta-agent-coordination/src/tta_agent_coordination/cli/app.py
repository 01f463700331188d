"""The root ``tta-coord`` application: global options, built-in commands, demo, plugins."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from typing import Annotated, Any

import typer

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.observability.logging import configure_logging

from . import (
    dashboard,
    dlq,
    doctor,
    exporter,
    inspect,
    meetings,
    queues,
    recover,
    runs,
    send,
    worker,
)
from .connect import CliState
from .errors import EXIT_USAGE, fail, warn
from .global_options import GlobalOptionsGroup
from .plugins import load_plugins

__all__ = ["BUILTIN_COMMANDS", "DEMO_MODULE", "app", "build_app", "main", "version_text"]

DEMO_MODULE = "tta_agent_coordination.cli.demo"
"""The optional package that adds ``tta-coord demo`` (``register(app)``)."""

BUILTIN_COMMANDS = frozenset(
    {
        "agents",
        "queues",
        "breakers",
        "dlq",
        "recover",
        "doctor",
        "worker",
        "exporter",
        "demo",
        "send",
        "request",
        "dashboard",
        "runs",
        "meetings",
    }
)
"""Command names plugins cannot take."""


def version_text() -> str:
    """``tta-coord <version>`` of the installed core package."""
    try:
        version = importlib.metadata.version("tta-agent-coordination")
    except importlib.metadata.PackageNotFoundError:
        from tta_agent_coordination import __version__ as version
    return f"tta-coord (tta-agent-coordination) {version}"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit()


def _root(
    ctx: typer.Context,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            envvar="TTA_COORD_REDIS_URL",
            help="Redis server, e.g. redis://127.0.0.1:6379/0.",
            show_default=False,
        ),
    ] = None,
    key_prefix: Annotated[
        str | None,
        typer.Option(
            "--key-prefix",
            envvar="TTA_COORD_KEY_PREFIX",
            help="Prefix of every key (default: ao).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            envvar="TTA_COORD_LOG_LEVEL",
            help="DEBUG, INFO, WARNING, ERROR or CRITICAL (default: INFO).",
            show_default=False,
        ),
    ] = None,
    json_logs: Annotated[
        bool | None,
        typer.Option(
            "--json-logs/--console-logs",
            envvar="TTA_COORD_JSON_LOGS",
            help="Logs on stderr as JSON lines, or for people (default: console).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Show the version and exit.",
        ),
    ] = False,
) -> None:
    """Inspect and operate tta-agent-coordination queues, agents and breakers on Redis.

    Settings come from the options, then TTA_COORD_* environment variables, then .env.
    """
    del version  # handled by its eager callback
    overrides: dict[str, Any] = {
        "redis_url": redis_url,
        "key_prefix": key_prefix,
        "log_level": log_level,
        "json_logs": json_logs,
    }
    state = CliState({k: v for k, v in overrides.items() if v is not None})
    ctx.obj = state
    try:
        settings = state.settings
    except ConfigurationError as exc:
        # Reported here, once, rather than by every command; --help still works.
        if ctx.invoked_subcommand is None or ctx.resilient_parsing:
            return
        raise fail(str(exc), EXIT_USAGE) from None
    configure_logging(settings.log_level, json=settings.json_logs)


def _add_demo(app: typer.Typer) -> None:
    try:
        found = importlib.util.find_spec(DEMO_MODULE) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return
    try:
        importlib.import_module(DEMO_MODULE).register(app)
    except Exception as exc:  # a broken demo must not take the other commands down
        warn(f"'tta-coord demo' is unavailable: {type(exc).__name__}: {exc}")


def build_app(*, plugins: bool = True) -> typer.Typer:
    """A new root application with every built-in command, the demo and (optionally) plugins."""
    app = typer.Typer(
        cls=GlobalOptionsGroup,  # --redis-url and co. also after the command
        name="tta-coord",
        help="Inspect and operate tta-agent-coordination on Redis.",
        no_args_is_help=True,
        # Locals may hold the Redis URL with its password; never print them.
        pretty_exceptions_show_locals=False,
        add_completion=True,  # --install-completion / --show-completion
    )
    app.callback()(_root)
    inspect.register(app)
    queues.register(app)
    send.register(app)
    app.add_typer(dlq.app, name="dlq")
    app.add_typer(runs.app, name="runs")
    app.add_typer(meetings.app, name="meetings")
    recover.register(app)
    doctor.register(app)
    worker.register(app)
    exporter.register(app)
    dashboard.register(app)
    _add_demo(app)
    if plugins:
        load_plugins(app, reserved=BUILTIN_COMMANDS)
    return app


app = build_app()
"""The ``tta-coord`` application (plugins discovered when this module is imported)."""


def main() -> None:
    """Console-script entry point of ``tta-coord``."""
    app(prog_name="tta-coord")
