"""``tta-coord store …``: migrations, history, restore and retention from a shell.

The core CLI discovers this Typer app through the ``tta_agent_coordination.cli`` entry
point named ``store``. Errors are reported as the core commands report them
(``tta_agent_coordination.cli.errors.handle_errors``): one ``Error: ...`` line on stderr,
never a traceback; exit 2 for a usage error (a malformed DSN, agent id or age), 1 for a
runtime failure (an unreachable database or Redis).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer

from tta_agent_coordination.cli.connect import get_state, parse_agent
from tta_agent_coordination.cli.errors import CliUsageError, handle_errors
from tta_agent_coordination.cli.output import JSON_OPTION, print_json
from tta_agent_coordination.settings import ENV_PREFIX
from tta_agent_coordination_postgres.models import StoredMessage
from tta_agent_coordination_postgres.store import DEFAULT_SCHEMA, PostgresMessageStore

__all__ = ["app", "parse_age"]

T = TypeVar("T")

app = typer.Typer(
    name="store",
    help="The Postgres message store: migrate, history, restore after a Redis loss, prune.",
    no_args_is_help=True,
    add_completion=False,
)

Dsn = Annotated[
    str,
    typer.Option(
        "--dsn", envvar="TTA_COORD_POSTGRES_DSN", help="Postgres DSN, e.g. postgresql://u@h/db."
    ),
]
Schema = Annotated[
    str,
    typer.Option("--schema", envvar="TTA_COORD_POSTGRES_SCHEMA", help="The store's schema."),
]

_AGE_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """Parse an age such as ``90s``, ``15m``, ``12h``, ``7d``, ``2w`` (or plain seconds).

    Raises:
        typer.BadParameter: the text is not such an age.
    """
    match = _AGE_RE.fullmatch(text.strip().lower())
    if not match:
        raise typer.BadParameter(f"{text!r} is not an age like 90s, 15m, 12h, 7d or 2w")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def _run(work: Callable[[], Awaitable[T]], server: str | None = None) -> T:
    """Run ``work``, reporting errors as the core CLI does (one line; exit 2 or 1).

    Args:
        work: the command's coroutine function.
        server: the (redacted) Redis URL, named in Redis connection errors.
    """
    with handle_errors(server):
        return asyncio.run(_call(work))


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


@app.command()
def migrate(dsn: Dsn, schema: Schema = DEFAULT_SCHEMA) -> None:
    """Create or upgrade the store's tables (safe to repeat and to run concurrently)."""

    async def work() -> list[int]:
        async with PostgresMessageStore(dsn, schema=schema) as store:
            return await store.migrate()

    applied = _run(work)
    if applied:
        typer.echo(f"applied migrations {', '.join(map(str, applied))} to schema {schema}")
    else:
        typer.echo(f"schema {schema} is up to date")


@app.command()
def history(
    agent: Annotated[str, typer.Argument(metavar="AGENT", help="Agent id: type or type:instance.")],
    dsn: Dsn,
    schema: Schema = DEFAULT_SCHEMA,
    limit: Annotated[int, typer.Option(min=1, help="Most messages to show.")] = 50,
    since: Annotated[
        str | None, typer.Option(help="Only messages newer than this age (e.g. 1h, 7d).")
    ] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Messages an agent sent or received, newest first."""
    with handle_errors():
        agent_id = parse_agent(agent)
    age = parse_age(since) if since is not None else None

    async def work() -> list[StoredMessage]:
        async with PostgresMessageStore(dsn, schema=schema) as store:
            start = datetime.now(UTC) - age if age is not None else None
            return await store.history(agent_id, since=start, limit=limit)

    rows = _run(work)
    if as_json:
        print_json([_message_json(m) for m in rows])
        return
    if not rows:
        typer.echo(f"no messages for {agent_id}")
    for m in rows:
        typer.echo(
            f"{m.created_at.isoformat(timespec='seconds')}  {m.message_id}  "
            f"{m.sender or '?'} -> {m.recipient}  {m.status.value}  attempts={m.attempts}"
            + (f"  error={m.last_error}" if m.last_error else "")
        )


def _message_json(message: StoredMessage) -> dict[str, Any]:
    """One stored message for ``--json``; agent ids as ``type:instance``, as elsewhere."""
    data = message.model_dump(mode="json")
    data["recipient"] = str(message.recipient)
    data["sender"] = None if message.sender is None else str(message.sender)
    return data


@app.command()
def restore(ctx: typer.Context, dsn: Dsn, schema: Schema = DEFAULT_SCHEMA) -> None:
    """Enqueue again every unsettled message (after a Redis loss); each exactly once.

    The Redis server and key prefix are the global ones (``tta-coord --redis-url URL
    --key-prefix P store restore``, or ``TTA_COORD_REDIS_URL`` / ``TTA_COORD_KEY_PREFIX``),
    the same every other command uses. Both must be given: restoring into another
    deployment's queues would be data corruption, so no default is assumed.
    """
    state = get_state(ctx)
    with handle_errors(state.server):
        settings = state.settings
        settings.require_redis_url()
        if "key_prefix" not in settings.model_fields_set:
            raise CliUsageError(
                "store restore needs the key prefix of the deployment to restore into: pass "
                f"--key-prefix or set {ENV_PREFIX}KEY_PREFIX (no default is assumed)"
            )

    async def work() -> int:
        client = settings.redis_client()
        try:
            await client.ping()  # pyright: ignore[reportUnknownMemberType]
            async with PostgresMessageStore(dsn, schema=schema) as store:
                return await store.restore(settings.build_coordinator(client))
        finally:
            await client.aclose()

    count = _run(work, state.server)
    typer.echo(
        f"restored {count} messages into {settings.redacted_url} under prefix "
        f"{settings.key_prefix!r}"
    )


@app.command()
def prune(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age of settled messages to delete (e.g. 30d).")
    ],
    dsn: Dsn,
    schema: Schema = DEFAULT_SCHEMA,
) -> None:
    """Delete settled messages (and deregistered agents) older than an age."""
    age = parse_age(older_than)

    async def work() -> int:
        async with PostgresMessageStore(dsn, schema=schema) as store:
            return await store.prune(older_than=age)

    deleted = _run(work)
    typer.echo(f"deleted {deleted} settled messages")
