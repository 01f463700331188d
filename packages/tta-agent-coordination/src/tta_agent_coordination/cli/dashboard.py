"""``tta-coord dashboard``: serve the web dashboard (needs the ``dashboard`` extra)."""

from __future__ import annotations

import importlib.util
from typing import Annotated, Any

import typer

from tta_agent_coordination.settings import CoordinationSettings

from .connect import get_state, run_async
from .errors import EXIT_USAGE, fail, handle_errors, warn

__all__ = ["INSTALL_HINT", "dashboard", "register"]

INSTALL_HINT = "pip install 'tta-agent-coordination[dashboard]'"
"""How to install what the dashboard needs."""

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def register(app: typer.Typer) -> None:
    """Add ``dashboard`` to ``app``."""
    app.command("dashboard")(dashboard)


def _installed() -> bool:
    try:
        return all(
            importlib.util.find_spec(name) is not None
            for name in ("starlette", "jinja2", "uvicorn", "python_multipart")
        )
    except (ImportError, ValueError):
        return False


def dashboard(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="The address to bind (the loopback unless you mean otherwise).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="The port to serve on.")] = 8088,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="TTA_COORD_DASHBOARD_TOKEN",
            help="Allow replay and purge to whoever gives this token (read-only without).",
            show_default=False,
            show_envvar=True,
        ),
    ] = None,
    store_dsn: Annotated[
        str | None,
        typer.Option(
            envvar="TTA_COORD_POSTGRES_DSN",
            help="Show message histories from the Postgres store at this DSN.",
            show_default=False,
            show_envvar=True,
        ),
    ] = None,
    plan_instance: Annotated[
        str,
        typer.Option(
            help="The PlanRuntime instance told of a cancel from the Runs page "
            "(its driver queue plan_runtime.<name>).",
        ),
    ] = "default",
) -> None:
    """Serve the web dashboard: agents, queues, dead letters, breakers, plan runs, history.

    Read-only unless a --token (or TTA_COORD_DASHBOARD_TOKEN) is set; every replay,
    purge and run cancel asks for it and is logged. Binds 127.0.0.1 by default.
    """
    state = get_state(ctx)
    if not _installed():
        raise fail(f"the dashboard needs its extra: {INSTALL_HINT}", EXIT_USAGE)
    from tta_agent_coordination.dashboard.serve import run_dashboard

    given: dict[str, Any] = {"postgres_dsn": store_dsn} if store_dsn else {}
    with handle_errors(state.server):
        settings = CoordinationSettings(**{**state.overrides, **given})
    if host not in _LOOPBACK:
        warn(
            f"the dashboard binds {host}: anyone who reaches it can read every queue"
            + ("; the token travels in clear without a TLS proxy in front" if token else "")
        )

    async def work(chosen: CoordinationSettings) -> None:
        await run_dashboard(
            chosen, host=host, port=port, token=token or None, plan_instance=plan_instance
        )

    run_async(state, work, settings=settings)
