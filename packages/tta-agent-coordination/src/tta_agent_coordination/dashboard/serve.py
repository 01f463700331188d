"""Serving the dashboard with uvicorn over the deployment the settings describe."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import uvicorn

from tta_agent_coordination.dashboard.app import create_app
from tta_agent_coordination.dashboard.sources import DashboardSources
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.plans import RunAdmin
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.settings import CoordinationSettings

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "run_dashboard"]

DEFAULT_HOST = "127.0.0.1"
"""The loopback: the dashboard is reachable from this machine only unless told otherwise."""
DEFAULT_PORT = 8088
"""The default port of ``tta-coord dashboard``."""

_log = get_logger(__name__)


async def run_dashboard(
    settings: CoordinationSettings,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    plan_instance: str = "default",
    on_server: Callable[[uvicorn.Server], None] | None = None,
) -> None:
    """Serve the dashboard until the server stops (SIGINT/SIGTERM, or ``should_exit``).

    Connects to ``settings``' Redis (checked with PING first) and, with ``postgres_dsn``,
    to the message store for message histories. ``plan_instance`` names the
    ``PlanRuntime`` whose driver hears of a run cancelled from the Runs page.
    ``on_server`` receives the uvicorn server before it starts (a caller that stops it
    sets ``should_exit``).

    Raises:
        ConfigurationError: ``plan_instance`` is not a valid agent name.
    """
    client = settings.redis_client(decode_responses=True)
    coordinator = None
    try:
        await client.ping()  # pyright: ignore[reportUnknownMemberType]
        coordinator = settings.build_coordinator(client)
        store = coordinator.store
        opener = getattr(store, "open", None)
        if callable(opener):  # connect now, so a bad DSN fails before serving
            opened = opener()
            if inspect.isawaitable(opened):
                await opened
        # Before the registry (which must be closed): a bad instance name fails here.
        runs_admin = RunAdmin(coordinator, instance=plan_instance, redis=client)
        registry = RedisAgentRegistry(client, key_prefix=settings.key_prefix)
        sources = DashboardSources(
            client, coordinator, registry, store, runs_admin=runs_admin, plan_instance=plan_instance
        )
        app = create_app(sources, token=token)
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        if on_server is not None:
            on_server(server)
        _log.info(
            "dashboard_started",
            url=f"http://{host}:{port}/",
            prefix=settings.key_prefix,
            writable=bool(token),
            history=sources.has_history,
        )
        await server.serve()
    finally:
        if coordinator is not None:
            await coordinator.aclose()
        await client.aclose()
