"""``tta-coord dlq list|replay|purge AGENT``: inspect and act on a queue's dead letters.

Every dead letter is listed; one that is not a deliverable message (failure
``malformed``: an entry another client, a bug or another version wrote; or a dead letter
that cannot be decoded) is shown by its raw fields, is kept by a replay, and is removed by
a purge.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tta_agent_coordination.models import AgentId, DeadLetter, UndecodableDeadLetter
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.settings import CoordinationSettings

from .connect import get_state, open_redis, parse_agent, run_async
from .errors import CliUsageError, handle_errors
from .output import JSON_OPTION, err_console, format_time, out_console, print_json

__all__ = ["DEFAULT_CHUNK", "app", "list_dead_letters", "purge", "replay", "replay_in_chunks"]

DEFAULT_CHUNK = 500
"""Dead letters replayed per round of ``dlq replay`` (one progress step)."""

app = typer.Typer(
    name="dlq",
    help="Inspect, replay or purge the dead letters of an agent's queue.",
    no_args_is_help=True,
)

AGENT_ARG: Any = typer.Argument(
    help="The queue: type:instance (one agent's), or type (the type queue, any instance)."
)


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
    table = Table(title=f"Dead letters of {agent_id} ({len(letters)} of {total})")
    for column in ("message id", "from", "type", "priority", "attempts", "failure", "dead at"):
        table.add_column(column)
    table.add_column("last error", overflow="fold")
    raw: list[UndecodableDeadLetter] = []
    for letter in letters:
        if isinstance(letter, UndecodableDeadLetter):
            raw.append(letter)
            table.add_row(
                escape(letter.message_id or "-"),
                "?",
                "?",
                "?",
                escape(letter.fields.get("a", "?")),
                escape(letter.failure_type or "?"),
                format_time(letter.dead_at) if letter.dead_at else "?",
                escape(letter.reason),
            )
            continue
        message = letter.message
        table.add_row(
            escape(message.message_id),
            str(message.sender),
            message.message_type.value,
            letter.priority.name.lower(),
            str(letter.attempts),
            letter.failure_type.value,
            format_time(letter.dead_at),
            escape(letter.last_error or "-"),
        )
    console.print(table)
    if raw:
        console.print(
            f"{len(raw)} of them cannot be delivered (malformed or undecodable): replay keeps "
            "them, purge removes them. Their raw fields (dlq list --json shows them all):"
        )
        for letter in raw:
            console.print(f"  {escape(letter.dead_letter_id)}: {escape(repr(letter.fields))}")


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


@app.command("replay")
def replay(
    ctx: typer.Context,
    agent: Annotated[str, AGENT_ARG],
    ids: Annotated[
        list[str] | None,
        typer.Option("--id", help="Replay only this message id (repeatable)."),
    ] = None,
    chunk: Annotated[
        int, typer.Option("--chunk", min=1, max=10_000, help="Dead letters per round trip.")
    ] = DEFAULT_CHUNK,
) -> None:
    """Move AGENT's dead letters (all, or the given --id's) back to its queue.

    Replayed messages get fresh attempts and keep their priority.
    """
    state = get_state(ctx)
    with handle_errors():
        agent_id = parse_agent(agent)
        if ids is not None and any(not i.strip() for i in ids):
            raise CliUsageError("--id needs a message id")

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
                with progress:
                    return await replay_in_chunks(
                        coord, agent_id, ids or None, chunk=chunk, progress=progress
                    )
            finally:
                await coord.aclose()

    replayed, considered = run_async(state, work)
    console = out_console()
    if considered == 0:
        console.print(f"No dead letters to replay in {agent_id}'s queue.")
        return
    left = considered - replayed
    note = (
        f" ({left} left in the DLQ: not found, already live in the queue, or malformed; "
        "see dlq list)"
        if left
        else ""
    )
    console.print(f"Replayed {replayed} of {considered} dead letters of {agent_id}{note}.")


@app.command("purge")
def purge(
    ctx: typer.Context,
    agent: Annotated[str, AGENT_ARG],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every dead letter of AGENT's queue (asks first unless --yes)."""
    state = get_state(ctx)
    with handle_errors():
        agent_id = parse_agent(agent)

    async def count(settings: CoordinationSettings) -> int:
        async with open_redis(settings) as client:
            coord = settings.build_coordinator(client)
            try:
                return (await coord.queue_stats(agent_id)).dead
            finally:
                await coord.aclose()

    if not yes:
        dead = run_async(state, count)
        if dead == 0:
            out_console().print(f"No dead letters in {agent_id}'s queue.")
            return
        if not typer.confirm(f"Delete {dead} dead letters of {agent_id}?", default=False):
            typer.echo("Aborted; nothing deleted.", err=True)
            raise typer.Exit(1)

    async def work(settings: CoordinationSettings) -> int:
        async with open_redis(settings) as client:
            coord = settings.build_coordinator(client)
            try:
                return await coord.purge_dead_letters(agent_id)
            finally:
                await coord.aclose()

    purged = run_async(state, work)
    out_console().print(f"Purged {purged} dead letters of {agent_id}.")
