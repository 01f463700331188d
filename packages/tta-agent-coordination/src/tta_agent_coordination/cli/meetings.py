"""``tta-coord meetings list|show|history|clock``: turn-based meetings (``docs/meetings.md``).

Reads through ``AgentMessaging.meeting`` on the configured prefix, so it works from any
machine that reaches Redis. ``clock`` runs a :class:`MeetingClock`: it times out the
expired turns of open meetings, also of meetings whose participants all died.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from tta_agent_coordination.interactions import (
    AgentMessaging,
    MeetingClock,
    MeetingEvent,
    MeetingNotFoundError,
    MeetingStatus,
)
from tta_agent_coordination.settings import CoordinationSettings

from .connect import get_state, open_redis, run_async
from .errors import CliError
from .output import JSON_OPTION, out_console, print_json, print_json_line

__all__ = ["NoSuchMeetingError", "app", "clock", "history", "list_meetings", "show"]

T = TypeVar("T")

app = typer.Typer(
    name="meetings",
    help="List, inspect and follow meetings; run the meeting clock (interactions).",
    no_args_is_help=True,
)

MEETING_ARG: Any = typer.Argument(metavar="MEETING_ID", help="The meeting's id.")


class NoSuchMeetingError(CliError):
    """The meeting does not exist (never created, or expired from Redis): exit 1."""


def _with_messaging(ctx: typer.Context, fn: Callable[[AgentMessaging], Awaitable[T]]) -> T:
    state = get_state(ctx)

    async def work(settings: CoordinationSettings) -> T:
        async with open_redis(settings) as client:
            coord = settings.build_coordinator(client)
            try:
                return await fn(AgentMessaging(coord))
            except MeetingNotFoundError as exc:
                raise NoSuchMeetingError(str(exc)) from None
            finally:
                await coord.aclose()

    return run_async(state, work)


@app.command("list")
def list_meetings(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="How many, newest first.")
    ] = 20,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """List the newest meetings with their status, turn and speaker."""

    async def work(messaging: AgentMessaging) -> list[MeetingStatus]:
        found: list[MeetingStatus] = []
        for mid in await messaging.meeting.list_meetings(limit):
            with contextlib.suppress(MeetingNotFoundError):  # expired since listed
                found.append(await messaging.meeting.get_meeting_status(mid))
        return found

    meetings = _with_messaging(ctx, work)
    if as_json:
        print_json([m.model_dump(mode="json") for m in meetings])
        return
    console = out_console()
    if not meetings:
        console.print("No meetings.")
        return
    table = Table(title=f"Meetings ({len(meetings)})")
    for column in ("meeting id", "status", "host", "turn", "speaker", "participants"):
        table.add_column(column, overflow="fold")
    for m in meetings:
        table.add_row(
            escape(m.meeting_id),
            m.status.value,
            escape(str(m.host)),
            str(m.turn),
            escape(str(m.current_speaker or "-")),
            str(len(m.participants)),
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    meeting_id: Annotated[str, MEETING_ARG],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Show one meeting: status, turn, speaker, deadline and every participant."""
    status: MeetingStatus = _with_messaging(ctx, lambda m: m.meeting.get_meeting_status(meeting_id))
    if as_json:
        print_json(status.model_dump(mode="json"))
        return
    console = out_console()
    console.print(
        f"Meeting {escape(status.meeting_id)}: [bold]{status.status.value}[/bold], "
        f"host {escape(str(status.host))}, turn {status.turn}"
    )
    if status.current_speaker is not None and status.deadline is not None:
        left = (status.deadline - status.now).total_seconds()
        console.print(f"Speaker: {escape(str(status.current_speaker))} ({left:.1f} s left)")
    if status.end_reason:
        console.print(f"Ended: {escape(status.end_reason)}")
    table = Table(title="Participants")
    for column in ("agent", "state", "order"):
        table.add_column(column, overflow="fold")
    for p in status.participants:
        table.add_row(escape(str(p.agent)), p.state.value, "-" if p.order is None else str(p.order))
    console.print(table)


def _line(event: MeetingEvent) -> str:
    who = escape(str(event.agent)) if event.agent else "-"
    what = "" if event.payload is None else f"  {escape(repr(event.payload))}"
    extra = {k: v for k, v in event.data.items() if k in ("reason", "next_speaker") and v}
    details = "".join(f"  {k}={escape(str(v))}" for k, v in sorted(extra.items()))
    kind = f"[bold]{event.type.value}[/bold]"
    return f"{event.event_id}  turn {event.turn}  {kind}  {who}{what}{details}"


@app.command("history")
def history(
    ctx: typer.Context,
    meeting_id: Annotated[str, MEETING_ARG],
    follow: Annotated[
        bool,
        typer.Option("--follow/--no-follow", "-f", help="Wait for new events until it ends."),
    ] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Print a meeting's events in order (messages and system events)."""
    console = out_console()

    def emit(event: MeetingEvent) -> None:
        if as_json:
            print_json_line(event.model_dump(mode="json"))
        else:
            console.print(_line(event))

    async def stream(messaging: AgentMessaging) -> int:
        count = 0
        if follow:
            async for event in messaging.meeting.events(meeting_id):
                emit(event)
                count += 1
            return count
        for event in await messaging.meeting.get_meeting_history(meeting_id):
            emit(event)
            count += 1
        return count

    count = _with_messaging(ctx, stream)
    if count == 0 and not as_json:
        console.print("No events.")


@app.command("clock")
def clock(
    ctx: typer.Context,
    idle: Annotated[
        float,
        typer.Option("--idle", min=0.01, help="Longest pause between looks at the index (s)."),
    ] = 0.5,
    once: Annotated[
        bool, typer.Option("--once", help="Handle the due meetings once, then exit.")
    ] = False,
) -> None:
    """Time out the expired turns of open meetings until interrupted (SIGINT/SIGTERM)."""

    async def work(messaging: AgentMessaging) -> int:
        keeper = MeetingClock(messaging, idle_s=idle)
        if once:
            await keeper.tick()
            return keeper.timeouts
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await keeper.run(stop)
        return keeper.timeouts

    timeouts = _with_messaging(ctx, work)
    out_console().print(f"Timed out {timeouts} turn(s).")
