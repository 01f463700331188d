"""The state shared by every command (settings from options and environment) and connecting.

Plugins use it too: ``get_state(ctx)`` gives the :class:`CliState` of the root command,
whose ``settings`` hold ``--redis-url``/``--key-prefix`` merged with ``TTA_COORD_*``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import typer

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.settings import CoordinationSettings, redact_url
from tta_agent_coordination.store import MessageStore

from .errors import handle_errors

__all__ = ["CliState", "connect_store", "get_state", "open_redis", "parse_agent", "run_async"]

T = TypeVar("T")


@dataclass
class CliState:
    """Global options of ``tta-coord``; settings are built (and validated) on first use.

    Building lazily lets ``--help`` and ``--version`` work whatever the environment holds.
    """

    overrides: dict[str, Any] = field(default_factory=dict[str, Any])
    """Settings given on the command line; they win over the environment."""

    _settings: CoordinationSettings | None = field(default=None, repr=False)

    @property
    def settings(self) -> CoordinationSettings:
        """The merged settings (raises ``ConfigurationError`` for an invalid value)."""
        if self._settings is None:
            self._settings = CoordinationSettings(**self.overrides)
        return self._settings

    @property
    def server(self) -> str | None:
        """The redacted Redis URL for messages, or None when none is set (or it is invalid)."""
        redis_url = self.overrides.get("redis_url")
        if self._settings is not None:
            return self._settings.redacted_url
        if isinstance(redis_url, str):
            return redact_url(redis_url)
        return None


def get_state(ctx: typer.Context) -> CliState:
    """The :class:`CliState` set up by the root command (a default one when run alone)."""
    state = ctx.find_object(CliState)
    if state is None:
        state = ctx.ensure_object(CliState)
    return state


def parse_agent(text: str) -> AgentId:
    """An agent id from ``type`` or ``type:instance`` (``InvalidAgentIdError`` otherwise)."""
    return AgentId.parse(text.strip())


def run_async(
    state: CliState,
    fn: Callable[[CoordinationSettings], Awaitable[T]],
    *,
    settings: CoordinationSettings | None = None,
) -> T:
    """Run ``fn(settings)`` with ``asyncio.run``, reporting user errors as one line.

    ``settings`` replaces the root's (a command with settings options of its own).

    Raises:
        typer.Exit: on a bad setting (2), an unreachable server (1), Ctrl-C (130).
    """
    with handle_errors(state.server):
        chosen = settings if settings is not None else state.settings

        async def main() -> T:
            return await fn(chosen)

        return asyncio.run(main())


@asynccontextmanager
async def open_redis(settings: CoordinationSettings) -> AsyncGenerator[RedisClient]:
    """A client of the configured server, checked with PING, closed on exit.

    The PING turns an unreachable server into one clear error before any work starts.
    """
    client = settings.redis_client(decode_responses=True)
    try:
        await client.ping()  # pyright: ignore[reportUnknownMemberType]
        yield client
    finally:
        await client.aclose()


async def connect_store(store: MessageStore | None) -> None:
    """Connect ``store`` now when it can (``open()``), so a bad DSN fails before any work.

    ``MessageStore`` itself has no ``open``; ``PostgresMessageStore`` connects lazily
    otherwise, and would report a bad DSN only at the first write.
    """
    opener = getattr(store, "open", None)
    if callable(opener):
        opened = opener()
        if inspect.isawaitable(opened):
            await opened
