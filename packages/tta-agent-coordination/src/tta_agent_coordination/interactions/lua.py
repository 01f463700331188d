"""Loading and running the interaction scripts (``interactions/scripts/*.lua``).

A line ``--#include <name>`` inlines ``scripts/<name>.lua`` (Redis scripts cannot call
each other). redis-py's ``Script`` sends EVALSHA and reloads a script on NOSCRIPT (after a
Redis restart or ``SCRIPT FLUSH``). Every Redis failure becomes
:class:`~tta_agent_coordination.errors.CoordinatorUnavailableError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import CoordinatorUnavailableError
from tta_agent_coordination.redis.lua import package_script

__all__ = ["InteractionScripts", "as_str", "guarded", "script_source"]

T = TypeVar("T")


def script_source(name: str) -> str:
    """The text of ``interactions/scripts/<name>.lua`` with its includes inlined."""
    return package_script("tta_agent_coordination.interactions", name)


def as_str(value: Any) -> str:
    """A script's reply item as ``str`` (clients with or without ``decode_responses``)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


async def guarded(operation: str, fn: Callable[[], Awaitable[T]]) -> T:
    """Run one Redis call; a Redis failure becomes ``CoordinatorUnavailableError``."""
    try:
        return await fn()
    except RedisError as exc:
        raise CoordinatorUnavailableError(f"{operation}: Redis failed: {exc}") from exc


class InteractionScripts:
    """The interaction scripts, registered lazily on one client."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._scripts: dict[str, AsyncScript] = {}

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run script ``name``; its raw reply.

        Raises:
            CoordinatorUnavailableError: Redis failed.
        """
        script = self._scripts.get(name)
        if script is None:
            script = self._client.register_script(script_source(name))
            self._scripts[name] = script
        return await guarded(name, lambda: script(keys=list(keys), args=list(args)))
