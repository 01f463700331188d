"""``tta-coord exporter``: the deployment-wide Prometheus view of one key prefix.

Every ``--interval`` seconds it measures every queue in the queue index (one
``queue_stats`` script per queue, pipelined), the circuit breakers shared through Redis
and the agent registry, and serves the last measurement on ``/metrics``, so that
workers need not each scan every queue. ``--once`` measures once and prints the
exposition text instead (for a textfile collector, or a look by hand).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Annotated

import typer

from tta_agent_coordination.settings import CoordinationSettings

from .connect import get_state, open_redis, run_async
from .errors import CliUsageError, handle_errors

if TYPE_CHECKING:
    from tta_agent_coordination.observability.prometheus import PrometheusMetrics
    from tta_agent_coordination.observability.refresher import MetricsRefresher

__all__ = ["exporter", "register"]


def register(app: typer.Typer) -> None:
    """Add ``exporter`` to ``app``."""
    app.command("exporter")(exporter)


def exporter(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="The port /metrics is served on.")
    ] = 9108,
    addr: Annotated[
        str,
        typer.Option(help="The address to bind; 0.0.0.0 to be scraped from other hosts."),
    ] = "127.0.0.1",
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between measurements.")] = 15.0,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Queues measured per pipelined round trip.")
    ] = 200,
    registry: Annotated[
        bool,
        typer.Option("--registry/--no-registry", help="Count registered agents by type."),
    ] = True,
    breakers: Annotated[
        bool,
        typer.Option("--breakers/--no-breakers", help="Read the breakers shared in Redis."),
    ] = True,
    once: Annotated[
        bool,
        typer.Option("--once", help="Measure once, print the metrics and exit (no server)."),
    ] = False,
) -> None:
    """Serve deployment-wide metrics: every queue, shared breaker and agent type.

    Needs the prometheus extra. Binds 127.0.0.1 unless --addr says otherwise; stops on
    SIGINT/SIGTERM.
    """
    state = get_state(ctx)
    with handle_errors(state.server):
        metrics = _new_metrics()

    async def work(settings: CoordinationSettings) -> None:
        from tta_agent_coordination.observability.deployment import DeploymentReader
        from tta_agent_coordination.observability.refresher import MetricsRefresher

        async with open_redis(settings) as client:
            coordinator = settings.build_coordinator(client, store=None)
            agents = settings.build_registry(client) if registry else None
            try:
                refresher = MetricsRefresher(
                    metrics,
                    DeploymentReader(client, coordinator, batch_size=batch_size),
                    breakers=breakers,
                    registry=agents,
                    interval_s=interval,
                )
                if once:
                    await refresher.refresh()
                    return
                await _serve(refresher, metrics, port, addr)
            finally:
                if agents is not None:
                    await agents.aclose()
                await coordinator.aclose()

    run_async(state, work)
    if once:
        from prometheus_client import generate_latest

        typer.echo(generate_latest(metrics.registry).decode(), nl=False)


def _new_metrics() -> PrometheusMetrics:
    try:
        from tta_agent_coordination.observability.prometheus import PrometheusMetrics
    except ModuleNotFoundError as exc:
        raise CliUsageError(
            f"the exporter needs {exc.name!r}: install tta-agent-coordination[prometheus]"
        ) from None
    return PrometheusMetrics()


async def _serve(
    refresher: MetricsRefresher, metrics: PrometheusMetrics, port: int, addr: str
) -> None:
    """Serve ``metrics`` and refresh them until SIGINT/SIGTERM."""
    from tta_agent_coordination.observability.logging import get_logger
    from tta_agent_coordination.observability.prometheus import serve_metrics
    from tta_agent_coordination.runtime.stopping import install_stop_signals

    try:
        server = serve_metrics(port, registry=metrics, addr=addr)
    except OSError as exc:
        raise CliUsageError(f"cannot serve metrics on {addr}:{port}: {exc}") from None
    stop = asyncio.Event()
    restore = install_stop_signals(lambda _name: stop.set())
    log = get_logger("tta_agent_coordination.cli.exporter")
    log.info("exporter_serving", addr=addr, port=server.port, interval_s=refresher.interval_s)
    try:
        while not stop.is_set():
            await refresher.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), refresher.interval_s)
    finally:
        restore()
        server.close()
        log.info("exporter_stopped")
