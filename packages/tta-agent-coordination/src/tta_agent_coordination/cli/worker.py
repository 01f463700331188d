"""``tta-coord worker MODULE:ATTR ...``: run agent workers until SIGINT/SIGTERM.

Each ``ATTR`` names an ``AgentWorker`` instance, or a factory ``factory(coordinator,
registry)`` or ``factory(coordinator, registry, settings)`` that returns an
``AgentWorker``, several of them (a list), or an awaitable of either. The CLI builds one
coordinator and one registry from the settings for every factory of the process (with
the message store when ``--store-dsn``/``TTA_COORD_POSTGRES_DSN`` is set), runs every
worker, and stops them all, within ``--grace-period``, on the first SIGINT/SIGTERM (a
second one ends the grace period) or when one of them stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import re
import sys
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import AgentAlreadyRegisteredError
from tta_agent_coordination.settings import CoordinationSettings

from .connect import connect_store, get_state, open_redis, run_async
from .errors import CliError, CliUsageError, handle_errors, warn

if TYPE_CHECKING:  # the prometheus extra is optional: imported only with --metrics-port
    from tta_agent_coordination.observability.prometheus import MetricsServer, PrometheusMetrics
    from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
    from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
    from tta_agent_coordination.runtime.worker import AgentWorker

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


def _worker_class() -> type[AgentWorker]:
    # Imported on use so that the other commands never pay for (or depend on) the runtime.
    from tta_agent_coordination.runtime.worker import AgentWorker

    return AgentWorker


_FACTORY_ONLY = {"instance": "--instance", "concurrency": "--concurrency", "takeover": "--takeover"}
"""Settings only a factory that takes ``settings`` can pass to its ``AgentWorker``."""


def _factory_arity(target: Any, spec: str) -> int:
    """2 or 3: whether ``target`` takes (coordinator, registry) or also ``settings``."""
    try:
        signature = inspect.signature(target)
    except ValueError:  # a builtin without a signature: let the call decide
        return 2
    try:
        signature.bind(None, None, None)
        return 3
    except TypeError:
        pass
    try:
        signature.bind(None, None)
    except TypeError:
        raise CliUsageError(
            f"{spec} must accept (coordinator, registry) or (coordinator, registry, settings) "
            "to be used as a worker factory"
        ) from None
    return 2


def _workers_of(made: Any, spec: str) -> list[AgentWorker]:
    worker_cls = _worker_class()
    if isinstance(made, worker_cls):
        return [made]
    if type(made) in (list, tuple):  # no isinstance: ``made`` stays Any
        items: list[Any] = list(made)
        if items and all(isinstance(w, worker_cls) for w in items):
            return cast("list[AgentWorker]", items)
    raise CliUsageError(
        f"{spec} returned a {type(made).__name__}, not an AgentWorker (or a list of them)"
    )


def _check_options(targets: dict[str, Any], given: dict[str, Any], store: bool) -> None:
    """Refuse options that cannot reach the workers (an explicit option is never ignored)."""
    worker_cls = _worker_class()
    wanted = [flag for name, flag in _FACTORY_ONLY.items() if name in given]
    for spec, obj in targets.items():
        if isinstance(obj, worker_cls):
            built = [*wanted, *(["--store-dsn"] if store else [])]
            if built:
                raise CliUsageError(
                    f"{spec} is an AgentWorker built already: {', '.join(built)} cannot reach "
                    "it; name a factory(coordinator, registry, settings) instead"
                )
        elif wanted and _factory_arity(obj, spec) == 2:
            raise CliUsageError(
                f"{', '.join(wanted)} cannot reach the workers of {spec}: make it accept "
                "(coordinator, registry, settings) and pass settings.instance and "
                "**settings.worker_options() to AgentWorker"
            )


def worker(
    ctx: typer.Context,
    targets: Annotated[
        list[str],
        typer.Argument(
            metavar="MODULE:ATTR...",
            help="AgentWorkers, or factories(coordinator, registry[, settings]) returning "
            "one or a list; several run in one process.",
            show_default=False,
        ),
    ],
    instance: Annotated[
        str | None,
        typer.Option(
            envvar="TTA_COORD_INSTANCE",
            help="Agent instance for the factories (settings.instance), e.g. a pod name.",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=(
                "Handlers each worker runs at once (settings.worker_options(); default 8,"
                " with reads that adapt to the backlog; given, reads are fixed)."
            ),
            show_default=False,
        ),
    ] = None,
    takeover: Annotated[
        bool | None,
        typer.Option(
            "--takeover/--no-takeover",
            envvar="TTA_COORD_TAKEOVER",
            help="Replace a live registration of the same agent id (a crashed predecessor "
            "whose liveness has not expired). Off by default.",
            show_default=False,
        ),
    ] = None,
    grace_period: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds in-flight handlers get after SIGTERM (default 10, "
            "TTA_COORD_GRACE_PERIOD_S).",
            show_default=False,
        ),
    ] = None,
    store_dsn: Annotated[
        str | None,
        typer.Option(
            envvar="TTA_COORD_POSTGRES_DSN",
            help="Record every message to the Postgres store at this DSN.",
            show_default=False,
            show_envvar=True,
        ),
    ] = None,
    durability: Annotated[
        str | None,
        typer.Option(
            envvar="TTA_COORD_STORE_DURABILITY",
            help="Store writes: async (write-behind, default) or sync.",
            show_default=False,
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus metrics on this port (needs the prometheus extra).",
            min=0,
            max=65535,
        ),
    ] = None,
    # Loopback by default, like the exporter and the dashboard: a library never opens a
    # port to the network unasked. A container scraped from another host passes 0.0.0.0.
    metrics_addr: Annotated[
        str,
        typer.Option(
            help="The address the metrics endpoint binds; 0.0.0.0 to be scraped from other "
            "hosts (e.g. in a container)."
        ),
    ] = "127.0.0.1",
    metrics_interval: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds between measurements of the workers' queues."),
    ] = 15.0,
) -> None:
    """Run agent workers until SIGINT/SIGTERM, then stop them gracefully.

    MODULE is imported with the current directory on sys.path. A factory that accepts a
    third argument gets the settings (settings.instance, settings.worker_options() with
    --concurrency and --takeover). With --store-dsn (or TTA_COORD_POSTGRES_DSN) every
    message is recorded to the Postgres store. With --metrics-port, the workers' stats,
    their queues' message metrics and durations, their queues' gauges (measured every
    --metrics-interval seconds) and the registry's agents are served for Prometheus.
    """
    worker_cls = _worker_class()
    state = get_state(ctx)
    cli_given: dict[str, Any] = {
        "instance": instance,
        "concurrency": concurrency,
        "takeover": takeover,
        "grace_period_s": grace_period,
        "postgres_dsn": store_dsn,
        "store_durability": durability,
    }
    given: dict[str, Any] = {k: v for k, v in cli_given.items() if v is not None}
    with handle_errors(state.server):
        settings = CoordinationSettings(**{**state.overrides, **given})
        loaded = {spec: load_target(spec) for spec in dict.fromkeys(targets)}
        for spec, obj in loaded.items():
            if not isinstance(obj, worker_cls):
                if not callable(obj):
                    raise CliUsageError(
                        f"{spec} is a {type(obj).__name__}, not an AgentWorker or a factory of one"
                    )
                _factory_arity(obj, spec)
        explicit = {k: v for k, v in given.items() if k in _FACTORY_ONLY}
        if takeover is False:
            explicit.pop("takeover", None)
        _check_options(loaded, explicit, store="postgres_dsn" in given)
        for spec, obj in loaded.items():
            if isinstance(obj, worker_cls) and settings.postgres_dsn is not None:
                warn(
                    f"{spec} is an AgentWorker built already: it records to the store only "
                    "if its own coordinator was given one (TTA_COORD_POSTGRES_DSN is set)"
                )
    exporter: PrometheusMetrics | None = None
    server: MetricsServer | None = None
    if metrics_port is not None:
        with handle_errors(state.server):
            exporter, server = _start_metrics(metrics_port, metrics_addr)

    # Each worker keeps its own grace period unless one is given (option or environment).
    grace = settings.grace_period_s if "grace_period_s" in settings.model_fields_set else None

    async def work(settings: CoordinationSettings) -> None:
        instances = [o for o in loaded.values() if isinstance(o, worker_cls)]
        factories = {s: o for s, o in loaded.items() if not isinstance(o, worker_cls)}
        if not factories:
            if exporter is None or settings.redis_url is None:
                await _run_workers(instances, grace, exporter)
                return
            # Built workers bring their own clients: measure their queues on one of ours.
            async with open_redis(settings) as client:
                coordinator = settings.build_coordinator(client, store=None)
                try:
                    async with _refreshing(
                        exporter, client, coordinator, None, instances, metrics_interval
                    ):
                        await _run_workers(instances, grace, exporter)
                finally:
                    await coordinator.aclose()
            return
        async with open_redis(settings) as client:
            coordinator = settings.build_coordinator(client, metrics=exporter)
            registry: RedisAgentRegistry | None = None
            try:
                await connect_store(coordinator.store)
                registry = settings.build_registry(client, coordinator=coordinator)
                workers = list(instances)
                for spec, factory in factories.items():
                    args = (coordinator, registry, settings)
                    made = factory(*args[: _factory_arity(factory, spec)])
                    if inspect.isawaitable(made):
                        made = await made
                    workers.extend(_workers_of(made, spec))
                async with _refreshing(
                    exporter, client, coordinator, registry, workers, metrics_interval
                ):
                    await _run_workers(workers, grace, exporter)
            finally:
                if registry is not None:
                    await registry.aclose()
                await coordinator.aclose()

    try:
        run_async(state, work, settings=settings)
    finally:
        if server is not None:
            server.close()


async def _run_workers(
    workers: list[AgentWorker], grace_period: float | None, exporter: PrometheusMetrics | None
) -> None:
    """Run every worker until a signal, or until one of them stops; then stop them all.

    ``grace_period`` (None: each worker's own) bounds the wait for in-flight handlers.

    Raises:
        CliError: an agent id is held by a live registration (the hint names --takeover).
    """
    from tta_agent_coordination.runtime.stopping import install_stop_signals
    from tta_agent_coordination.runtime.worker import WorkerState

    ids = [w.agent_id for w in workers]
    twice = sorted({str(a) for a in ids if ids.count(a) > 1})
    if twice:
        raise CliUsageError(f"several workers run as {', '.join(twice)} in one process")
    if exporter is not None:
        for w in workers:
            exporter.track_worker(w)
    loop = asyncio.get_running_loop()
    stoppers: list[asyncio.Task[None]] = []
    signalled: list[str] = []

    def on_signal(name: str) -> None:
        first = not signalled
        signalled.append(name)
        for w in workers:
            w.request_stop(name)  # a second signal ends the grace period
            if first and grace_period is not None and w.state is WorkerState.RUNNING:
                stoppers.append(loop.create_task(w.stop(grace_period)))

    restore = install_stop_signals(on_signal)
    tasks = [
        loop.create_task(w.run(install_signal_handlers=False), name=f"run-{w.agent_id}")
        for w in workers
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # One stopped (a signal, a stop request, a lost registration, a failed start):
        # the process stops as a whole, so its supervisor sees and restarts it.
        live = [w for w in workers if w.state in (WorkerState.RUNNING, WorkerState.STOPPING)]
        await asyncio.gather(*(w.stop(grace_period) for w in live), return_exceptions=True)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*stoppers, return_exceptions=True)
    finally:
        restore()
        for task in (*tasks, *stoppers):
            task.cancel()
    for result in results:
        if isinstance(result, AgentAlreadyRegisteredError):
            raise CliError(
                f"{result}. If that owner is a crashed predecessor of this process (a "
                "supervised restart), run with --takeover (TTA_COORD_TAKEOVER=1); "
                "otherwise stop the other process first"
            ) from None
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result


@contextlib.asynccontextmanager
async def _refreshing(
    exporter: PrometheusMetrics | None,
    client: RedisClient,
    coordinator: RedisMessageCoordinator,
    registry: RedisAgentRegistry | None,
    workers: Sequence[AgentWorker],
    interval_s: float,
) -> AsyncGenerator[None]:
    """Measure the workers' queues (and the registry) every ``interval_s`` while inside.

    Only the queues these workers consume: ``tta-coord exporter`` gives the view of
    every queue, so that N workers do not each scan them all. The Redis breaker of
    ``client`` is exported too.
    """
    if exporter is None:
        yield
        return
    from tta_agent_coordination.observability.deployment import DeploymentReader
    from tta_agent_coordination.observability.refresher import MetricsRefresher
    from tta_agent_coordination.resilience.defaults import default_redis_guard

    exporter.track_breaker(default_redis_guard(client).breaker)
    refresher = MetricsRefresher(
        exporter,
        DeploymentReader(client, coordinator),
        queues=lambda: [w.agent_id for w in workers],
        breakers=False,
        registry=registry,
        interval_s=interval_s,
    )
    task = asyncio.create_task(refresher.run(), name="metrics-refresher")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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
