"""Read-only views: ``tta-coord agents`` and ``breakers`` (``queues``: ``queues.py``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tta_agent_coordination.agents import AgentRecord
from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.redis.breaker_pages import find_breakers, read_breaker_rows
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.settings import CoordinationSettings

from .connect import get_state, open_redis, run_async
from .output import JSON_OPTION, format_time, id_column, out_console, print_json

__all__ = ["agents", "breakers", "register"]


def register(app: typer.Typer) -> None:
    """Add ``agents`` and ``breakers`` to ``app``."""
    app.command("agents")(agents)
    app.command("breakers")(breakers)


# --- agents --------------------------------------------------------------------------------


def agents(
    ctx: typer.Context,
    alive_only: Annotated[
        bool, typer.Option("--alive", help="Only registrations that are alive.")
    ] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """List the registered agents (alive and recently expired) from the registry."""
    state = get_state(ctx)

    async def work(settings: CoordinationSettings) -> list[AgentRecord]:
        async with open_redis(settings) as client:
            registry = RedisAgentRegistry(client, key_prefix=settings.key_prefix)
            return await registry.list_registered()

    records = run_async(state, work)
    if alive_only:
        records = [r for r in records if r.alive]
    if as_json:
        print_json([_record_json(r) for r in records])
        return
    console = out_console()
    if not records:
        console.print(f"No agents registered under prefix {state.settings.key_prefix!r}.")
        return
    table = Table(title=f"Agents ({state.settings.key_prefix})")
    id_column(table, "agent", (str(r.agent_id) for r in records))
    for column in ("name", "alive", "status", "capabilities", "last heartbeat"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(
            str(r.agent_id),
            escape(r.name),
            "yes" if r.alive else "[red]no[/red]",
            escape(r.status),
            escape(", ".join(c.name for c in r.capabilities) or "-"),
            format_time(r.last_heartbeat),
        )
    console.print(table)


def _record_json(record: AgentRecord) -> dict[str, Any]:
    data = record.model_dump(mode="json")
    data["agent_id"] = str(record.agent_id)
    return data


# --- breakers ------------------------------------------------------------------------------


async def read_breakers(client: RedisClient, keys: KeySpace) -> list[dict[str, Any]]:
    """The shared breaker states under ``keys.prefix`` (``RedisBreakerStore`` hashes), by name.

    Each entry: ``name``, ``state``, ``generation``, ``failures`` (consecutive, closed),
    ``retry_after_s`` (open: seconds until it half-opens, by the server clock),
    ``probes_in_flight`` and ``probe_successes`` (half-open).
    """
    names = await find_breakers(client, keys)
    return [asdict(row) for row in await read_breaker_rows(client, keys, names)]


def breakers(ctx: typer.Context, as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """List circuit breakers whose state is shared through Redis (RedisBreakerStore).

    Breakers with in-process state (the default) live in each process and are not
    visible here.
    """
    state = get_state(ctx)

    async def work(settings: CoordinationSettings) -> list[dict[str, Any]]:
        async with open_redis(settings) as client:
            return await read_breakers(client, KeySpace(settings.key_prefix))

    rows = run_async(state, work)
    if as_json:
        print_json(rows)
        return
    console = out_console()
    prefix = state.settings.key_prefix
    if not rows:
        console.print(
            f"No shared circuit breakers under prefix {prefix!r}. Breakers with in-process "
            "state (the default) are not visible to other processes; use RedisBreakerStore "
            "to share them."
        )
        return
    table = Table(title=f"Shared circuit breakers ({prefix})")
    for column in ("breaker", "state", "failures", "retry after", "probes", "generation"):
        table.add_column(column)
    colours = {"closed": "green", "open": "red", "half_open": "yellow"}
    for row in rows:
        colour = colours.get(row["state"], "white")
        retry = row["retry_after_s"]
        table.add_row(
            escape(row["name"]),
            f"[{colour}]{row['state']}[/{colour}]",
            str(row["failures"]),
            "-" if retry is None else f"{retry:.1f}s",
            f"{row['probes_in_flight']} ({row['probe_successes']} ok)"
            if row["state"] == "half_open"
            else "-",
            str(row["generation"]),
        )
    console.print(table)
