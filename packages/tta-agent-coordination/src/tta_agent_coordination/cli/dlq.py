"""``tta-coord dlq list|replay|purge AGENT``: inspect and act on a queue's dead letters.

Every dead letter is listed; one that is not a deliverable message (failure
``malformed``: an entry another client, a bug or another version wrote; or a dead letter
that cannot be decoded) is shown by its raw fields, is kept by a replay, and is removed by
a purge.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tta_agent_coordination.models import AgentId, DeadLetter, UndecodableDeadLetter
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.settings import CoordinationSettings

from .connect import get_state, open_redis, parse_agent, run_async
from .errors import CliError, CliUsageError, handle_errors
from .output import (
    JSON_OPTION,
    err_console,
    format_time,
    id_column,
    out_console,
    print_json,
    table_fits,
)
from .queues import require_queues

__all__ = [
    "DEFAULT_CHUNK",
    "NoSuchDeadLetterError",
    "app",
    "list_dead_letters",
    "purge",
    "replay",
    "replay_in_chunks",
    "resolve_ids",
]

DEFAULT_CHUNK = 500
"""Dead letters replayed per round of ``dlq replay`` (one progress step)."""

app = typer.Typer(
    name="dlq",
    help="Inspect, replay or purge the dead letters of an agent's queue.",
    no_args_is_help=True,
)

AGENT_ARG: Any = typer.Argument(
    metavar="AGENT",
    help="The queue: type:instance (one agent's), or type (the type queue, any instance).",
)

_SHOWN_MATCHES = 5
"""Ids listed when a --id prefix matches several dead letters."""

_COLUMNS = (
    "message id",
    "from",
    "type",
    "priority",
    "attempts",
    "failure",
    "dead at",
    "last error",
)


class NoSuchDeadLetterError(CliError):
    """A ``dlq replay --id`` matches no dead letter, or several (exit 1)."""


@app.command("list")
def list_dead_letters(
    ctx: typer.Context,
    agent: Annotated[str, AGENT_ARG],
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="How many, oldest first.")
    ] = 20,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Show the oldest dead letters of AGENT's queue."""
    state = get_state(ctx)
    with handle_errors():
        agent_id = parse_agent(agent)

    async def work(
        settings: CoordinationSettings,
    ) -> tuple[list[DeadLetter | UndecodableDeadLetter], int]:
        async with open_redis(settings) as client:
            coord = settings.build_coordinator(client)
            try:
                await require_queues(client, coord, [agent_id])
                letters = await coord.dead_letters(agent_id, limit=limit)
                return letters, (await coord.queue_stats(agent_id)).dead
            finally:
                await coord.aclose()

    letters, total = run_async(state, work)
    if as_json:
        print_json([_as_json(letter) for letter in letters])
        return
    console = out_console()
    if not letters:
        console.print(f"No dead letters in {agent_id}'s queue.")
        return
    title = f"Dead letters of {agent_id} ({len(letters)} of {total})"
    rows = [_row(letter) for letter in letters]
    raw = [letter for letter in letters if isinstance(letter, UndecodableDeadLetter)]
    table = Table(title=title)
    id_column(table, _COLUMNS[0], (row[0] for row in rows))
    id_column(table, _COLUMNS[1], (row[1] for row in rows))
    for column in _COLUMNS[2:]:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    if table_fits(console, table):
        console.print(table)
    else:
        _print_records(console, title, rows)
    if raw:
        console.print(
            f"{len(raw)} of them cannot be delivered (malformed or undecodable): replay keeps "
            "them, purge removes them. Their raw fields (dlq list --json shows them all):"
        )
        for letter in raw:
            console.print(f"  {escape(letter.dead_letter_id)}: {escape(repr(letter.fields))}")


def _row(letter: DeadLetter | UndecodableDeadLetter) -> tuple[str, ...]:
    """The cells of one dead letter, in ``_COLUMNS`` order, as plain text."""
    if isinstance(letter, UndecodableDeadLetter):
        return (
            letter.message_id or "-",
            "?",
            "?",
            "?",
            letter.fields.get("a", "?"),
            letter.failure_type or "?",
            format_time(letter.dead_at) if letter.dead_at else "?",
            letter.reason,
        )
    message = letter.message
    return (
        message.message_id,
        str(message.sender),
        message.message_type.value,
        letter.priority.name.lower(),
        str(letter.attempts),
        letter.failure_type.value,
        format_time(letter.dead_at),
        letter.last_error or "-",
    )


def _print_records(console: Console, title: str, rows: list[tuple[str, ...]]) -> None:
    """One block per dead letter: a terminal too narrow for the table keeps ids whole."""
    console.print(title, style="italic")
    for row in rows:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for column, cell in zip(_COLUMNS, row, strict=True):
            grid.add_row(column, escape(cell))
        console.print()
        console.print(grid)


def _as_json(letter: DeadLetter | UndecodableDeadLetter) -> dict[str, Any]:
    """One dead letter for ``--json``; ``undecodable`` tells the two shapes apart."""
    return {
        **letter.model_dump(mode="json"),
        "undecodable": isinstance(letter, UndecodableDeadLetter),
    }


async def replay_in_chunks(
    coord: RedisMessageCoordinator,
    agent_id: AgentId,
    message_ids: list[str] | None,
    *,
    chunk: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Replay dead letters ``chunk`` at a time; ``(replayed, considered)``.

    With ``message_ids`` None every dead letter present at the start is considered, oldest
    first. A dead letter that cannot be replayed (its message id is live in the queue
    again, or it is malformed or undecodable) stays where it is and is skipped. Letters
    dead-lettered again while the replay runs are not replayed twice: the loop stops after
    the number present at the start.
    """
    if message_ids is not None:
        ids = list(dict.fromkeys(message_ids))
        task = progress.add_task("replaying", total=len(ids)) if progress else None
        replayed = 0
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            replayed += await coord.replay_dead_letters(agent_id, part)
            if progress is not None and task is not None:
                progress.advance(task, len(part))
        return replayed, len(ids)

    total = (await coord.queue_stats(agent_id)).dead
    task = progress.add_task("replaying", total=total) if progress else None
    replayed = considered = skipped = 0
    while considered < total:
        # Skipped letters stay at the head of the stream: read past them.
        want = min(chunk, total - considered)
        letters = await coord.dead_letters(agent_id, limit=skipped + want)
        window = letters[skipped:]
        if not window:
            break
        batch = [letter.message.message_id for letter in window if isinstance(letter, DeadLetter)]
        done = await coord.replay_dead_letters(agent_id, batch) if batch else 0
        replayed += done
        skipped += len(window) - done
        considered += len(window)
        if progress is not None and task is not None:
            progress.advance(task, len(window))
    return replayed, considered


async def resolve_ids(
    coord: RedisMessageCoordinator, agent_id: AgentId, prefixes: list[str]
) -> list[str]:
    """The message ids of the dead letters that ``prefixes`` name, one each.

    A full message id names its dead letter; a prefix names the one dead letter whose
    message id starts with it, as ``git`` resolves a short commit id.

    Raises:
        NoSuchDeadLetterError: a prefix matches no dead letter of the queue, or several.
    """
    dead = (await coord.queue_stats(agent_id)).dead
    letters = await coord.dead_letters(agent_id, limit=max(dead, 1))
    present = {
        letter.message.message_id if isinstance(letter, DeadLetter) else letter.message_id
        for letter in letters
    }
    ids = sorted(i for i in present if i is not None)
    resolved: list[str] = []
    problems: list[str] = []
    for prefix in prefixes:
        if prefix in present:
            resolved.append(prefix)
            continue
        matches = [i for i in ids if i.startswith(prefix)]
        if len(matches) == 1:
            resolved.append(matches[0])
        elif not matches:
            problems.append(
                f"no dead letter of {agent_id} has a message id starting with {prefix!r}"
            )
        else:
            shown = ", ".join(matches[:_SHOWN_MATCHES])
            more = ", ..." if len(matches) > _SHOWN_MATCHES else ""
            problems.append(
                f"{prefix!r} matches {len(matches)} dead letters of {agent_id} ({shown}{more}): "
                "give more of the message id"
            )
    if problems:
        raise NoSuchDeadLetterError("; ".join(problems) + " (see tta-coord dlq list)")
    return list(dict.fromkeys(resolved))


@app.command("replay")
def replay(
    ctx: typer.Context,
    agent: Annotated[str, AGENT_ARG],
    ids: Annotated[
        list[str] | None,
        typer.Option(
            "--id",
            help="Replay only the dead letter with this message id, or the one id that "
            "starts with it (repeatable).",
        ),
    ] = None,
    chunk: Annotated[
        int, typer.Option("--chunk", min=1, max=10_000, help="Dead letters per round trip.")
    ] = DEFAULT_CHUNK,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Move AGENT's dead letters (all, or the given --id's) back to its queue.

    Replayed messages get fresh attempts and keep their priority. An --id that matches
    no dead letter, or several, is an error (exit 1) and nothing is replayed.
    """
    state = get_state(ctx)
    with handle_errors():
        agent_id = parse_agent(agent)
        if ids is not None and any(not i.strip() for i in ids):
            raise CliUsageError("--id needs a message id")
    wanted = [i.strip() for i in ids] if ids else None

    async def work(settings: CoordinationSettings) -> tuple[int, int]:
        async with open_redis(settings) as client:
            coord = settings.build_coordinator(client)
            progress = Progress(
                TextColumn(f"replaying dead letters of {agent_id}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console(),
                transient=True,
            )
            try:
                await require_queues(client, coord, [agent_id])
                chosen = await resolve_ids(coord, agent_id, wanted) if wanted else None
                with progress:
                    return await replay_in_chunks(
                        coord, agent_id, chosen, chunk=chunk, progress=progress
                    )
            finally:
                await coord.aclose()

    replayed, considered = run_async(state, work)
    left = considered - replayed
    if as_json:
        print_json(
            {"queue": str(agent_id), "replayed": replayed, "considered": considered, "left": left}
        )
        return
    console = out_console()
    if considered == 0:
        console.print(f"No dead letters to replay in {agent_id}'s queue.")
        return
    note = (
        f" ({left} left in the DLQ: already live in the queue again, or malformed; see dlq list)"
        if left
        else ""
    )
    console.print(f"Replayed {replayed} of {considered} dead letters of {agent_id}{note}.")


@app.command("purge")
def purge(
    ctx: typer.Context,
    agent: Annotated[str, AGENT_ARG],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Delete every dead letter of AGENT's queue (asks first, on stderr, unless --yes)."""
    state = get_state(ctx)
    with handle_errors():
        agent_id = parse_agent(agent)

    async def count(settings: CoordinationSettings) -> int:
        async with open_redis(settings) as client:
            coord = settings.build_coordinator(client)
            try:
                await require_queues(client, coord, [agent_id])
                return (await coord.queue_stats(agent_id)).dead
            finally:
                await coord.aclose()

    async def work(settings: CoordinationSettings) -> int:
        async with open_redis(settings) as client:
            coord = settings.build_coordinator(client)
            try:
                if yes:  # otherwise checked by count() already
                    await require_queues(client, coord, [agent_id])
                return await coord.purge_dead_letters(agent_id)
            finally:
                await coord.aclose()

    if not yes:
        dead = run_async(state, count)
        if dead == 0:
            _print_purged(agent_id, 0, as_json, none_text=True)
            return
        _confirm(dead, agent_id)
    _print_purged(agent_id, run_async(state, work), as_json)


def _print_purged(
    agent_id: AgentId, purged: int, as_json: bool, *, none_text: bool = False
) -> None:
    if as_json:
        print_json({"queue": str(agent_id), "purged": purged})
    elif none_text:
        out_console().print(f"No dead letters in {agent_id}'s queue.")
    else:
        out_console().print(f"Purged {purged} dead letters of {agent_id}.")


def _confirm(dead: int, agent_id: AgentId) -> None:
    """Ask on stderr (stdout stays the result's, e.g. ``--json``); exit 1 when declined."""
    if not typer.confirm(f"Delete {dead} dead letters of {agent_id}?", default=False, err=True):
        typer.echo("Aborted; nothing deleted.", err=True)
        raise typer.Exit(1)
