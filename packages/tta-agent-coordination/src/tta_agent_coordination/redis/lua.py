"""Loading the package's Lua scripts and running them with EVALSHA.

Scripts live in ``redis/scripts/<name>.lua``. redis-py's ``Script`` object sends EVALSHA
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


@cache
def script_source(name: str) -> str:
    """The text of ``scripts/<name>.lua``, read once."""
    path = resources.files("tta_agent_coordination.redis").joinpath("scripts", f"{name}.lua")
    return path.read_text(encoding="utf-8")


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
