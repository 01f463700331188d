"""``tta-coord recover [AGENT]``: return expired leases and due retries to their queues."""

from __future__ import annotations

from typing import Annotated

import typer

from tta_agent_coordination.settings import CoordinationSettings

from .connect import get_state, open_redis, parse_agent, run_async
from .errors import handle_errors
from .output import JSON_OPTION, out_console, print_json

__all__ = ["recover", "register"]


def register(app: typer.Typer) -> None:
    """Add ``recover`` to ``app``."""
    app.command("recover")(recover)


def recover(
    ctx: typer.Context,
    agent: Annotated[
        str | None,
        typer.Argument(
            metavar="AGENT", help="One queue (type or type:instance); every queue if omitted."
        ),
    ] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Requeue expired leases and due retries (of one queue, or of every queue).

    A lease that expired counts as a delivery, so a message on its last attempt is
    dead-lettered instead. Workers do this for their own queue on every receive; run it
    for queues nobody is reading. A queue that does not exist has nothing to recover
    (0): recovery itself deletes an emptied queue's keys, so it is not an error here.
    """
    state = get_state(ctx)
    with handle_errors():
        agent_id = parse_agent(agent) if agent is not None else None

    async def work(settings: CoordinationSettings) -> int:
        async with open_redis(settings) as client:
            coord = settings.build_coordinator(client)
            try:
                return await coord.recover_pending(agent_id)
            finally:
                await coord.aclose()

    moved = run_async(state, work)
    if as_json:
        print_json({"queue": None if agent_id is None else str(agent_id), "recovered": moved})
        return
    where = f"{agent_id}'s queue" if agent_id is not None else "every queue"
    out_console().print(f"Recovered {moved} messages in {where}.")
