"""``tta-coord demo``: TTA's agents at work, with a retry, a dead letter, a crash and an outage.

``register(app)`` adds the command (``tta_agent_coordination.cli.app`` calls it). The
script itself is :mod:`.scenario` (library code that returns a :class:`DemoResult`), the
display is :mod:`.view`, the fault injection :mod:`.outage`, the TTA scene (run when
``tta_agents`` is installed, loaded at run time) :mod:`.tta_scene` and the plan scene
:mod:`.plan_scene` and the meeting scene :mod:`.meeting_scene`. See ``docs/demo.md``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, cast

import typer
from rich.console import Console

from tta_agent_coordination.cli.connect import CliState, get_state
from tta_agent_coordination.cli.errors import (
    EXIT_FAILURE,
    CliError,
    CliUsageError,
    handle_errors,
)
from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.observability.logging import configure_logging
from tta_agent_coordination.redis.keys import KeySpace

from .scenario import DemoResult, DemoScenario, DemoSettings, run_demo
from .view import (
    LiveView,
    PlainLog,
    meeting_turns_table,
    plan_steps_table,
    summary_table,
    tta_turns_table,
)

__all__ = ["DemoResult", "DemoScenario", "DemoSettings", "demo", "register", "run_demo"]


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command("demo")(demo)


def demo(
    ctx: typer.Context,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            help="Run on this Redis instead of the embedded FakeRedis (default: the global "
            "--redis-url or TTA_COORD_REDIS_URL). The server is never stopped or flushed.",
            show_default=False,
        ),
    ] = None,
    key_prefix: Annotated[
        str | None,
        typer.Option(
            "--key-prefix",
            help="Prefix of the demo's keys (default: a new demo-<random>); it must hold "
            "no keys yet, and its keys are deleted at the end.",
            show_default=False,
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live/--no-live",
            help="A live view while it runs, or plain lines (plain when stdout is not a terminal).",
        ),
    ] = True,
    pause: Annotated[
        float,
        typer.Option("--pause", min=0.0, max=5.0, help="Seconds between the acts."),
    ] = 0.5,
) -> None:
    """Run agents of several types through a retry, a dead letter, a crash and an outage.

    Exits 0 only if every message ended where it should; otherwise 1, with the reasons.
    """
    state = get_state(ctx)
    with handle_errors(state.server):
        url = redis_url or state.settings.redis_url
        prefix = key_prefix or f"demo-{uuid.uuid4().hex[:8]}"
        KeySpace(prefix)  # the one rule for prefixes: ConfigurationError → exit 2
        _quiet_library_logs(state)
        console = Console(highlight=False)
        use_live = live and console.is_terminal
        result = asyncio.run(
            _run(state, url, prefix, console, use_live, pause, explicit_prefix=key_prefix)
        )
        if result.tta is not None:
            console.print(tta_turns_table(result.tta))
        if result.plan is not None:
            console.print(plan_steps_table(result.plan))
        if result.meeting is not None:
            console.print(meeting_turns_table(result.meeting))
        console.print(summary_table(result))
        if not result.ok:
            for problem in result.problems:
                console.print(f"FAILED: {problem}", style="bold red", markup=False)
            raise typer.Exit(EXIT_FAILURE)
        console.print(
            f"OK: every message ended where it should ({result.elapsed:.1f}s)", style="green"
        )


def _quiet_library_logs(state: CliState) -> None:
    # The demo tells its own story; the library's warnings about the failures it
    # provokes on purpose would drown it. --log-level (or the variable) brings them back.
    if "log_level" not in state.overrides and not os.environ.get("TTA_COORD_LOG_LEVEL"):
        configure_logging("CRITICAL", json=state.settings.json_logs)


async def _run(
    state: CliState,
    url: str | None,
    prefix: str,
    console: Console,
    use_live: bool,
    pause: float,
    *,
    explicit_prefix: str | None,
) -> DemoResult:
    async with _client(state, url) as (client, where):
        if explicit_prefix is not None and await _has_keys(client, prefix):
            raise CliUsageError(
                f"key prefix {prefix!r} already holds keys on {where}; the demo deletes its "
                "keys at the end, so give it a prefix of its own (or leave --key-prefix out)"
            )
        console.print(f"tta-coord demo on {where}, key prefix {prefix}", markup=False)
        settings = DemoSettings(pause_s=pause)
        try:
            plain = None if use_live else PlainLog(Console(highlight=False, soft_wrap=True))
            scenario = DemoScenario(client, prefix, settings, on_event=plain)
            if scenario.tta_skipped is not None:
                # One line, however narrow the terminal.
                console.print(scenario.tta_skipped, style="yellow", markup=False, soft_wrap=True)
            if use_live:
                with LiveView(scenario, console):
                    return await scenario.run()
            return await scenario.run()  # plain: one line per event
        finally:
            if url is not None:
                await _delete_prefix(client, prefix)


@asynccontextmanager
async def _client(state: CliState, url: str | None) -> AsyncGenerator[tuple[RedisClient, str]]:
    """The demo's Redis and how to name it: the server at ``url``, or an embedded FakeRedis."""
    if url is None:
        try:
            from tta_agent_coordination.testing import fake_redis

            client = fake_redis(decode_responses=True)
        except ModuleNotFoundError:
            raise CliError(
                "the embedded FakeRedis needs fakeredis: install "
                "'tta-agent-coordination[testing]', or run on a server with --redis-url "
                "(or TTA_COORD_REDIS_URL)"
            ) from None
        where = "an embedded FakeRedis"
    else:
        settings = CliState({**state.overrides, "redis_url": url}).settings
        client = settings.redis_client(decode_responses=True)
        where = settings.redacted_url or "Redis"
    try:
        if url is not None:
            await client.ping()  # pyright: ignore[reportUnknownMemberType]
        yield client, where
    finally:
        await client.aclose()


async def _has_keys(client: RedisClient, prefix: str) -> bool:
    keys = cast("AsyncIterator[str]", client.scan_iter(match=f"{prefix}:*", count=500))
    async for _ in keys:
        return True
    return False


async def _delete_prefix(client: RedisClient, prefix: str) -> None:
    """Delete every key the demo wrote (``prefix:*``), in batches."""
    batch: list[str] = []
    keys = cast("AsyncIterator[str]", client.scan_iter(match=f"{prefix}:*", count=500))
    async for key in keys:
        batch.append(key)
        if len(batch) >= 500:
            await client.delete(*batch)
            batch.clear()
    if batch:
        await client.delete(*batch)
