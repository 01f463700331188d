"""Loading the package's Lua scripts and running them with EVALSHA.

Scripts live in ``redis/scripts/<name>.lua``. A line ``--#include <other>`` is replaced
by the text of ``scripts/<other>.lua`` (Redis has no way for one script to call another,
so shared helpers are inlined when the script is loaded). redis-py's ``Script`` object sends EVALSHA
and reloads the script on NOSCRIPT (after a Redis restart or SCRIPT FLUSH), also inside
pipelines, so no caller ever sends the script body on the hot path.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

__all__ = ["ScriptSet", "script_source"]

_INCLUDE = "--#include "


@cache
def script_source(name: str) -> str:
    """The text of ``scripts/<name>.lua``, read once."""
    path = resources.files("tta_agent_coordination.redis").joinpath("scripts", f"{name}.lua")
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(
        script_source(line.removeprefix(_INCLUDE).strip()) if line.startswith(_INCLUDE) else line
        for line in lines
    )


class ScriptSet:
    """The scripts one component uses, registered on one client (lazily, by name)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._scripts: dict[str, AsyncScript] = {}

    def __getitem__(self, name: str) -> AsyncScript:
        script = self._scripts.get(name)
        if script is None:
            script = self._client.register_script(script_source(name))
            self._scripts[name] = script
        return script

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run script ``name`` with ``keys`` and ``args``; its raw reply."""
        return await self[name](keys=keys, args=args)
