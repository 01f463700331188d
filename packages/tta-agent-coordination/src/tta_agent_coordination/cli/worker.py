"""``tta-coord worker MODULE:ATTR``: run a user's agent worker until SIGINT/SIGTERM.

``ATTR`` names either an ``AgentWorker`` instance, or a factory
``factory(coordinator, registry)`` that returns an ``AgentWorker`` (or an awaitable of
one); the CLI builds the coordinator and registry from the settings for it.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tta_agent_coordination.settings import CoordinationSettings

from .connect import get_state, open_redis, run_async
from .errors import CliUsageError, handle_errors

if TYPE_CHECKING:  # the prometheus extra is optional: imported only with --metrics-port
    from tta_agent_coordination.observability.prometheus import MetricsServer, PrometheusMetrics

__all__ = ["load_target", "parse_target", "register", "worker"]

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def register(app: typer.Typer) -> None:
    """Add ``worker`` to ``app``."""
    app.command("worker")(worker)


def parse_target(spec: str) -> tuple[str, str]:
    """Split ``MODULE:ATTR`` (both dotted Python names).

    Raises:
        CliUsageError: the text is not of that form.
    """
    module, sep, attr = spec.strip().partition(":")
    if not sep or not _DOTTED.fullmatch(module) or not _DOTTED.fullmatch(attr):
        raise CliUsageError(
            f"invalid worker {spec!r}: expected MODULE:ATTR, e.g. myapp.agents:worker "
            "(dotted Python names)"
        )
    return module, attr


def load_target(spec: str) -> Any:
    """Import ``MODULE`` (the current directory first on ``sys.path``) and resolve ``ATTR``.

    Raises:
        CliUsageError: a malformed spec, a missing module or attribute, or an error while
            importing the module.
    """
    module_name, attr = parse_target(spec)
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        # As `python -m` does: the user's package is usually in the working directory.
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (
            module_name == exc.name or module_name.startswith(exc.name + ".")
        ):
            raise CliUsageError(
                f"cannot import {module_name!r}: no module named {exc.name!r} (run from the "
                "directory that holds it, or install it)"
            ) from None
        raise CliUsageError(f"error while importing {module_name!r}: {exc}") from None
    except Exception as exc:
        raise CliUsageError(
            f"error while importing {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CliUsageError(f"module {module_name!r} has no attribute {attr!r}") from None
    return target


def _check_factory(target: Any, spec: str) -> None:
    try:
        inspect.signature(target).bind(None, None)
    except TypeError:
        raise CliUsageError(
            f"{spec} must accept (coordinator, registry) to be used as a worker factory"
        ) from None
    except ValueError:  # a builtin without a signature: let the call decide
        return


def worker(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:ATTR",
            help="An AgentWorker, or a factory(coordinator, registry) returning one.",
        ),
    ],
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus metrics on this port (needs the prometheus extra).",
            min=0,
            max=65535,
        ),
    ] = None,
    # All interfaces by default: a worker in a container is scraped from another host, and
    # the endpoint is only opened when --metrics-port is given.
    metrics_addr: Annotated[
        str, typer.Option(help="The address the metrics endpoint binds.")
    ] = "0.0.0.0",  # nosec B104
) -> None:
    """Run an agent worker until SIGINT/SIGTERM, then stop it gracefully.

    MODULE is imported with the current directory on sys.path. With --metrics-port, the
    worker's stats and its queue's message metrics are served for Prometheus.
    """
    # Imported here so that the other commands never pay for (or depend on) the runtime.
    from tta_agent_coordination.runtime.worker import AgentWorker

    state = get_state(ctx)
    exporter: PrometheusMetrics | None = None
    server: MetricsServer | None = None
    if metrics_port is not None:
        with handle_errors(state.server):
            exporter, server = _start_metrics(metrics_port, metrics_addr)
    with handle_errors(state.server):
        obj = load_target(target)
        if not isinstance(obj, AgentWorker):
            if not callable(obj):
                raise CliUsageError(
                    f"{target} is a {type(obj).__name__}, not an AgentWorker or a factory of one"
                )
            _check_factory(obj, target)

    async def work(settings: CoordinationSettings) -> None:
        if isinstance(obj, AgentWorker):
            if exporter is not None:
                exporter.track_worker(obj)
            await obj.run()
            return
        async with open_redis(settings) as client:
            coordinator = settings.build_coordinator(client, metrics=exporter)
            registry = settings.build_registry(client, coordinator=coordinator)
            try:
                made = obj(coordinator, registry)
                if inspect.isawaitable(made):
                    made = await made
                if not isinstance(made, AgentWorker):
                    raise CliUsageError(
                        f"{target} returned a {type(made).__name__}, not an AgentWorker"
                    )
                if exporter is not None:
                    exporter.track_worker(made)
                await made.run()
            finally:
                await registry.aclose()
                await coordinator.aclose()

    try:
        run_async(state, work)
    finally:
        if server is not None:
            server.close()


def _start_metrics(port: int, addr: str) -> tuple[PrometheusMetrics, MetricsServer]:
    """A ``PrometheusMetrics`` and the server that serves it on ``addr:port``."""
    try:
        from tta_agent_coordination.observability.prometheus import (
            PrometheusMetrics,
            serve_metrics,
        )
    except ModuleNotFoundError as exc:
        raise CliUsageError(
            f"--metrics-port needs {exc.name!r}: install tta-agent-coordination[prometheus]"
        ) from None
    metrics = PrometheusMetrics()
    try:
        server = serve_metrics(port, registry=metrics, addr=addr)
    except OSError as exc:
        raise CliUsageError(f"cannot serve metrics on {addr}:{port}: {exc}") from None
    return metrics, server
