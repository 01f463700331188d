"""``tta-coord runs list|show|events|cancel``: the plan runtime's runs (``docs/plans.md``).

Reads and cancels through :class:`~tta_agent_coordination.plans.RunAdmin`, so it needs no
planner and works from any machine that reaches Redis. ``--instance`` names the runtime
(``PlanRuntime(instance=...)``; ``default`` unless the host app chose another).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from tta_agent_coordination.plans import (
    RunAdmin,
    RunEvent,
    RunNotFoundError,
    RunResult,
    RunSummary,
)
from tta_agent_coordination.settings import CoordinationSettings

from .connect import get_state, open_redis, run_async
from .errors import CliError
from .output import JSON_OPTION, out_console, print_json, print_json_line

__all__ = ["NoSuchRunError", "app", "cancel", "events", "list_runs", "show"]

T = TypeVar("T")

app = typer.Typer(
    name="runs",
    help="List, inspect, follow or cancel plan runs (tta_agent_coordination.plans).",
    no_args_is_help=True,
)

INSTANCE_OPTION: Any = typer.Option(
    "--instance", help="The PlanRuntime's instance name (its driver queue plan_runtime.<name>)."
)
RUN_ARG: Any = typer.Argument(metavar="RUN_ID", help="The run's id (from 'runs list').")


class NoSuchRunError(CliError):
    """The run does not exist (never started, or its retention passed): exit 1."""


def _with_admin(ctx: typer.Context, instance: str, fn: Callable[[RunAdmin], Awaitable[T]]) -> T:
    state = get_state(ctx)

    async def work(settings: CoordinationSettings) -> T:
        async with open_redis(settings) as client:
            coord = settings.build_coordinator(client)
            try:
                admin = RunAdmin(coord, instance=instance, redis=client)
                return await fn(admin)
            except RunNotFoundError as exc:
                raise NoSuchRunError(str(exc)) from None
            finally:
                await coord.aclose()

    return run_async(state, work)


@app.command("list")
def list_runs(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="How many, newest first.")
    ] = 20,
    instance: Annotated[str, INSTANCE_OPTION] = "default",
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """List the newest runs with their status."""
    runs: list[RunSummary] = _with_admin(ctx, instance, lambda admin: admin.list_runs(limit))
    if as_json:
        print_json(
            [
                {"run_id": r.run_id, "status": r.status.value, "created_ms": r.created_ms}
                for r in runs
            ]
        )
        return
    console = out_console()
    if not runs:
        console.print("No runs.")
        return
    table = Table(title=f"Runs ({len(runs)})")
    for column in ("run id", "status", "created"):
        table.add_column(column, overflow="fold")
    for run in runs:
        created = datetime.fromtimestamp(run.created_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(escape(run.run_id), run.status.value, created)
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, RUN_ARG],
    instance: Annotated[str, INSTANCE_OPTION] = "default",
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Show one run: status, mode, every step attempt and its result."""
    result: RunResult = _with_admin(ctx, instance, lambda admin: admin.result(run_id))
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    console = out_console()
    console.print(
        f"Run {escape(result.run_id)}: [bold]{result.status.value}[/bold] "
        f"({result.mode.value}, plan v{result.plan_version}, {result.replans} replans)"
    )
    if result.reason:
        console.print(f"Reason: {escape(result.reason)}")
    table = Table(title="Step attempts")
    for column in ("plan", "step", "agent", "attempt", "outcome"):
        table.add_column(column, overflow="fold")
    for record in result.steps:
        error = record.result.error
        outcome = "ok" if record.result.ok else f"{error.kind}: {error.message}" if error else "?"
        table.add_row(
            str(record.plan_version),
            escape(record.step_id),
            str(record.agent),
            str(record.attempt),
            escape(outcome),
        )
    console.print(table)
    for message in result.messages:
        console.print(f"> {escape(message)}")


@app.command("events")
def events(
    ctx: typer.Context,
    run_id: Annotated[str, RUN_ARG],
    follow: Annotated[
        bool,
        typer.Option("--follow/--no-follow", "-f", help="Wait for new events until the run ends."),
    ] = False,
    after: Annotated[str, typer.Option("--after", help="Only events after this entry id.")] = "0",
    instance: Annotated[str, INSTANCE_OPTION] = "default",
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Print a run's events (planned, step_started, step_succeeded, ..., completed)."""
    console = out_console()

    def emit(event: RunEvent) -> None:
        if as_json:
            print_json_line(event.model_dump(mode="json"))
        else:
            details = " ".join(f"{k}={v}" for k, v in sorted(event.data.items()))
            console.print(
                f"{event.id}  v{event.version}  [bold]{event.kind}[/bold]  {escape(details)}"
            )

    async def stream(admin: RunAdmin) -> int:
        count = 0
        async for event in admin.events(run_id, after, follow=follow):
            emit(event)
            count += 1
        return count

    count = _with_admin(ctx, instance, stream)
    if count == 0 and not as_json:
        console.print("No events.")


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    run_id: Annotated[str, RUN_ARG],
    reason: Annotated[str, typer.Option("--reason", help="Recorded as the run's reason.")] = (
        "cancelled from tta-coord"
    ),
    instance: Annotated[str, INSTANCE_OPTION] = "default",
) -> None:
    """Cancel a live run (no further step starts; a step in flight is left to finish)."""

    async def work(admin: RunAdmin) -> None:
        if await admin.cancel(run_id, reason):
            return
        status = await admin.status(run_id)
        raise CliError(f"run {run_id!r} had already ended ({status.value}); nothing to cancel")

    _with_admin(ctx, instance, work)
    out_console().print(f"Cancelled run {escape(run_id)}.")
