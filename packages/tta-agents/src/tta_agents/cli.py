"""``tta-coord tta …``: the legacy-key migration from a shell.

The core CLI discovers this Typer app through the ``tta_agent_coordination.cli`` entry
point named ``tta``. The Redis server is the global one (``tta-coord --redis-url URL``
or ``TTA_COORD_REDIS_URL``); the new key space is the global ``--key-prefix``, and the
legacy layout's prefix is ``--legacy-prefix`` (the same by default: TTA used ``ao`` for
both). Errors are reported as the core commands report them: one ``Error: ...`` line on
stderr, exit 2 for a usage error, 1 for a runtime failure.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tta_agent_coordination.cli.connect import get_state, open_redis, parse_agent, run_async
from tta_agent_coordination.cli.errors import CliUsageError, handle_errors
from tta_agent_coordination.cli.output import JSON_OPTION, err_console, out_console, print_json
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.settings import CoordinationSettings
from tta_agents.migrate import (
    LegacyReport,
    MigrationReport,
    Unmovable,
    legacy_report,
    migrate_keys,
)

__all__ = ["app"]

app = typer.Typer(
    name="tta",
    help="TTA's legacy deployments: report what the original key layout holds, migrate it.",
    no_args_is_help=True,
    add_completion=False,
)

LegacyPrefix = Annotated[
    str | None,
    typer.Option(
        "--legacy-prefix",
        help="Key prefix of the original layout (default: the global --key-prefix).",
    ),
]


def _legacy_prefix(settings: CoordinationSettings, given: str | None) -> str:
    return given if given is not None else settings.key_prefix


@app.command("legacy-report")
def legacy_report_command(
    ctx: typer.Context,
    legacy_prefix: LegacyPrefix = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """List what the original layout holds: messages per queue, subscriptions, agents, breakers."""
    state = get_state(ctx)

    async def work(settings: CoordinationSettings) -> LegacyReport:
        async with open_redis(settings) as client:
            return await legacy_report(client, _legacy_prefix(settings, legacy_prefix))

    report = run_async(state, work)
    if as_json:
        data: dict[str, Any] = report.model_dump(mode="json")
        data["messages"] = report.messages
        print_json(data)
        return
    _print_legacy(report)


@app.command("migrate-keys")
def migrate_keys_command(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would move; change nothing.")
    ] = False,
    legacy_prefix: LegacyPrefix = None,
    rename: Annotated[
        list[str] | None,
        typer.Option(
            "--rename",
            metavar="OLD=NEW",
            help=(
                "Move the legacy agent OLD (type:instance) to the agent id NEW; for names "
                "the core refuses. Repeatable."
            ),
        ),
    ] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Move every queued, delayed, reserved and dead legacy message into the new key space.

    Stop the original consumers first and start the new workers after. Each message moves
    once, with its priority and attempts, even when the command is run again or resumed
    after a crash; entries that are not valid messages stay in place and are listed.
    """
    state = get_state(ctx)
    with handle_errors(state.server):
        renames = _renames(rename or [])

    async def work(settings: CoordinationSettings) -> MigrationReport:
        async with open_redis(settings) as client:
            coordinator = settings.build_coordinator(client)
            registry = settings.build_registry(client)
            try:
                return await migrate_keys(
                    client,
                    coordinator,
                    prefix=_legacy_prefix(settings, legacy_prefix),
                    dry_run=dry_run,
                    renames=renames,
                    registry=registry,
                )
            finally:
                await registry.aclose()
                await coordinator.aclose()

    report = run_async(state, work)
    if as_json:
        data: dict[str, Any] = report.model_dump(mode="json")
        data["moved"] = report.moved
        print_json(data)
        return
    _print_migration(report)


def _renames(pairs: list[str]) -> dict[str, AgentId]:
    """``OLD=NEW`` pairs as a mapping (``CliUsageError`` for a malformed one)."""
    out: dict[str, AgentId] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip():
            raise CliUsageError(
                f"--rename takes OLD=NEW (type:instance=type:instance), got {pair!r}"
            )
        out[old.strip()] = parse_agent(new)
    return out


def _print_legacy(report: LegacyReport) -> None:
    console = out_console()
    if not report.queues:
        console.print(f"no legacy queues under prefix {report.prefix!r}")
    else:
        table = Table(title=f"legacy queues under {report.prefix!r}")
        for header in ("agent", "moves to", "high", "normal", "low", "delayed", "reserved"):
            table.add_column(header, no_wrap=header in ("agent", "moves to"))
        for header in ("expired", "dead", "unparsable", "audit", "orphans"):
            table.add_column(header)
        for q in report.queues:
            table.add_row(
                q.agent,
                q.queue or "(invalid name)",
                *(str(q.ready.get(p, 0)) for p in (9, 5, 1)),
                *(str(n) for n in (q.delayed, q.reserved, q.expired, q.dead)),
                *(str(n) for n in (q.unparsable, q.audit, q.orphans)),
            )
        console.print(table)
    console.print(f"movable messages: {report.messages}; already migrated: {report.migrated}")
    for agent, types in report.subscriptions.items():
        console.print(f"subscription {agent}: {', '.join(types)}")
    for a in report.agents:
        saved = "saved state (seeded into the registry)" if a.has_state else "no state"
        console.print(f"agent record {a.agent}: {saved}")
    for name, breaker in report.breakers.items():
        console.print(f"breaker {name}: {breaker} (not migrated; new breakers start closed)")
    _print_unmovable(report.unparsable, "unparsable")


def _print_migration(report: MigrationReport) -> None:
    console = out_console()
    verb = "would move" if report.dry_run else "moved"
    for q in report.queues:
        extra = ""
        if q.duplicates:
            extra += f", {q.duplicates} duplicate copies removed"
        if q.already_present:
            extra += f", {q.already_present} already in the new queue"
        if q.vanished:
            extra += f", {q.vanished} VANISHED from the legacy keys meanwhile (check them)"
        console.print(
            f"{q.legacy} -> {q.queue}: {verb} {q.ready} ready, {q.delayed} delayed, "
            f"{q.requeued} requeued, {q.dead} dead{extra}"
        )
    console.print(
        f"{verb} {report.moved} messages, {report.subscriptions} subscription sets and "
        f"{report.states_seeded} saved agent states"
        + (f" ({report.states_kept} already there)" if report.states_kept else "")
        + (" (dry run: nothing changed)" if report.dry_run else "")
    )
    _print_unmovable(report.unmovable, "left in place")


def _print_unmovable(entries: list[Unmovable], label: str) -> None:
    if not entries:
        return
    err = err_console()
    err.print(f"{len(entries)} entries {label}:")
    for entry in entries:
        shown = f" [{entry.preview}]" if entry.preview else ""
        err.print(f"  {entry.key}: {entry.reason}{shown}", markup=False)
