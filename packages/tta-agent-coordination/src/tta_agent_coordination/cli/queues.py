"""``tta-coord queues [AGENT ...] [--watch]``: the counts of each queue, once or refreshing.

A queue named on the command line must exist (:func:`missing_queues`): a typo, or the
wrong ``--key-prefix``, is an error rather than a row of zeros for a queue nobody uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.models import AgentId, MessagePriority
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.settings import CoordinationSettings

from .connect import get_state, open_redis, parse_agent, run_async
from .errors import CliError, handle_errors
from .output import JSON_OPTION, format_time, id_column, out_console, print_json, print_json_line

__all__ = [
    "NoSuchQueueError",
    "missing_queues",
    "queue_rows",
    "queues",
    "register",
    "require_queues",
]


class NoSuchQueueError(CliError):
    """A queue named on the command line does not exist under the prefix (exit 1)."""

    def __init__(self, missing: Sequence[AgentId], prefix: str) -> None:
        names = ", ".join(str(agent_id) for agent_id in missing)
        noun = "queue" if len(missing) == 1 else "queues"
        super().__init__(
            f"no such {noun} under prefix {prefix!r}: {names} (nothing was sent to it, or it "
            "was emptied and cleaned up, and no agent of that id is registered). Check the "
            "agent id and --key-prefix; 'tta-coord queues' lists the known queues"
        )


def register(app: typer.Typer) -> None:
    """Add ``queues`` to ``app``."""
    app.command("queues")(queues)


async def missing_queues(
    client: RedisClient, coord: RedisMessageCoordinator, ids: Sequence[AgentId]
) -> list[AgentId]:
    """The queues among ``ids`` that do not exist under the coordinator's prefix.

    A queue exists when it is in the queue index, when any of its keys exists (a message
    ready, leased, delayed or dead), or when an agent of that id is registered (a worker
    waiting for its first message; for a type queue, any instance of the type).
    """
    known = set(await coord.known_queues())
    unknown = [agent_id for agent_id in ids if agent_id not in known]
    if not unknown:
        return []
    missing: list[AgentId] = []
    registry = RedisAgentRegistry(client, key_prefix=coord.keys.prefix)
    try:
        for agent_id in unknown:
            # One queue's keys share a hash slot, so one EXISTS answers for all of them.
            if await client.exists(*coord.keys.queue(agent_id).all_keys):
                continue
            if agent_id.is_type_wide:
                # A type queue is served by any instance of the type.
                if await registry.discover(agent_id.type, alive_only=False):
                    continue
            elif await registry.get(agent_id) is not None:
                continue
            missing.append(agent_id)
    finally:
        await registry.aclose(deregister=False)
    return missing


async def require_queues(
    client: RedisClient, coord: RedisMessageCoordinator, ids: Sequence[AgentId]
) -> None:
    """Raise :class:`NoSuchQueueError` when any queue of ``ids`` does not exist."""
    missing = await missing_queues(client, coord, ids)
    if missing:
        raise NoSuchQueueError(missing, coord.keys.prefix)


async def queue_rows(
    coord: RedisMessageCoordinator, wanted: Sequence[AgentId] | None
) -> list[dict[str, Any]]:
    """One row of counts per queue (``wanted``, or every known queue), for a table or JSON."""
    ids = list(wanted) if wanted is not None else await coord.known_queues()
    rows: list[dict[str, Any]] = []
    for agent_id in ids:
        stats = await coord.queue_stats(agent_id)
        rows.append(
            {
                "queue": str(agent_id),
                "type_wide": agent_id.is_type_wide,
                "high": stats.ready[MessagePriority.HIGH],
                "normal": stats.ready[MessagePriority.NORMAL],
                "low": stats.ready[MessagePriority.LOW],
                "leased": stats.leased,
                "delayed": stats.delayed,
                "dead": stats.dead,
            }
        )
    return rows


def _table(rows: list[dict[str, Any]], prefix: str, at: datetime | None = None) -> Table:
    title = f"Queues ({prefix})" if at is None else f"Queues ({prefix}) at {format_time(at)}"
    table = Table(title=title)
    id_column(table, "queue", (row["queue"] for row in rows))
    for column in ("high", "normal", "low", "leased", "delayed", "dead"):
        table.add_column(column, justify="right")
    for row in rows:
        dead = str(row["dead"])
        table.add_row(
            f"{row['queue']} [dim](any instance)[/dim]" if row["type_wide"] else row["queue"],
            *(str(row[c]) for c in ("high", "normal", "low", "leased", "delayed")),
            f"[red]{dead}[/red]" if row["dead"] else dead,
        )
    return table


def queues(
    ctx: typer.Context,
    agent: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="AGENT",
            help="Queues to show: type:instance, or type (the type queue, any instance); "
            "all known queues if none.",
        ),
    ] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Refresh every --interval until Ctrl-C.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between refreshes of --watch.")
    ] = 2.0,
    iterations: Annotated[
        int | None,
        # For tests and scripts: stop after this many refreshes.
        typer.Option("--iterations", min=1, hidden=True),
    ] = None,
) -> None:
    """Show ready (per priority), leased, delayed and dead counts of each queue.

    A queue named that does not exist is an error (exit 1). With --watch the view is
    redrawn every --interval seconds (--json: one JSON line per refresh).
    """
    state = get_state(ctx)
    with handle_errors():
        wanted = [parse_agent(a) for a in agent] if agent else None

    async def work(settings: CoordinationSettings) -> list[dict[str, Any]]:
        async with open_redis(settings) as client:
            coord = settings.build_coordinator(client)
            try:
                if wanted is not None:
                    await require_queues(client, coord, wanted)
                if not watch:
                    return await queue_rows(coord, wanted)
                await _watch(coord, wanted, settings.key_prefix, as_json, interval, iterations)
                return []
            finally:
                await coord.aclose()

    rows = run_async(state, work)
    if watch:
        return
    if as_json:
        print_json(rows)
        return
    console = out_console()
    if not rows:
        console.print(f"No queues under prefix {state.settings.key_prefix!r}.")
        return
    console.print(_table(rows, state.settings.key_prefix))


async def _watch(
    coord: RedisMessageCoordinator,
    wanted: Sequence[AgentId] | None,
    prefix: str,
    as_json: bool,
    interval: float,
    iterations: int | None,
) -> None:
    """Redraw the counts every ``interval`` seconds (``iterations`` times, or until Ctrl-C).

    On a terminal the table is redrawn in place; otherwise (a pipe, a log file) each
    refresh is printed after the previous one, so nothing is lost.
    """
    console = out_console()
    redraw = console.is_terminal and not as_json
    live = Live(console=console, auto_refresh=False) if redraw else None
    done = 0
    try:
        if live is not None:
            live.start()
        while True:
            rows = await queue_rows(coord, wanted)
            now = datetime.now(UTC)
            if as_json:
                print_json_line({"time": now, "queues": rows})
            elif live is not None:
                live.update(_table(rows, prefix, now), refresh=True)
            else:
                _print_frame(console, rows, prefix, now)
            done += 1
            if iterations is not None and done >= iterations:
                return
            await asyncio.sleep(interval)
    finally:
        if live is not None:
            live.stop()


def _print_frame(console: Console, rows: list[dict[str, Any]], prefix: str, at: datetime) -> None:
    if rows:
        console.print(_table(rows, prefix, at))
    else:
        console.print(f"No queues under prefix {prefix!r} at {format_time(at)}.")
