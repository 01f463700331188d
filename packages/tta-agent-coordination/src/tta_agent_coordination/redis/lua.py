"""Loading the package's Lua scripts and running them with EVALSHA.

Scripts live in ``redis/scripts/<name>.lua``. A line ``--#include <other>`` is replaced
by the text of ``scripts/<other>.lua`` (Redis has no way for one script to call another,
so shared helpers are inlined when the script is loaded). Beside each queue script,
``redis/scripts/<name>.py`` declares its arguments and its outcome once, as a function
that returns a :class:`ScriptCall` (see ``docs/architecture.md``, "The scripts").

redis-py's ``Script`` object sends EVALSHA and reloads the script on NOSCRIPT (after a
Redis restart or SCRIPT FLUSH), so no single call sends the script body on the hot path.
Inside a pipeline it does too, but by asking ``SCRIPT EXISTS`` before *every* pipeline,
one more round trip per batch: :meth:`ScriptSet.run_pipelined` sends plain EVALSHAs
instead and handles NOSCRIPT itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from typing import Any, Generic, NamedTuple, TypeVar

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import CoordinatorUnavailableError

__all__ = ["ScriptCall", "ScriptSet", "package_script", "script_source"]

_INCLUDE = "--#include "

R = TypeVar("R")


@cache
def package_script(package: str, name: str) -> str:
    """The text of ``<package>/scripts/<name>.lua``, its ``--#include`` lines inlined.

    Read once. Every module with scripts of its own (the queues here, ``interactions``,
    ``plans``) loads them through this one function.
    """
    path = resources.files(package).joinpath("scripts", f"{name}.lua")
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(
        package_script(package, line.removeprefix(_INCLUDE).strip())
        if line.startswith(_INCLUDE)
        else line
        for line in lines
    )


def script_source(name: str) -> str:
    """The text of ``redis/scripts/<name>.lua`` (see :func:`package_script`)."""
    return package_script("tta_agent_coordination.redis", name)


class ScriptCall(NamedTuple, Generic[R]):
    """One prepared run of a script: its name, KEYS, ARGV, and how to read its outcome.

    Built by the typed wrappers in ``redis/scripts/<name>.py``, so that a script's
    argument order and outcome layout are written down once, beside the script.
    """

    name: str
    keys: Sequence[str | bytes]
    """Bytes where the caller encoded them once (redis-py sends bytes as they are)."""
    argv: Sequence[Any]
    parse: Callable[[Any], R]


class ScriptSet:
    """The scripts one component uses, registered on one client (lazily, by name)."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._scripts: dict[str, AsyncScript] = {}

    def __getitem__(self, name: str) -> AsyncScript:
        script = self._scripts.get(name)
        if script is None:
            script = self._client.register_script(script_source(name))
            self._scripts[name] = script
        return script

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run script ``name`` with ``keys`` and ``args``; its raw result."""
        return await self[name](keys=keys, args=args)

    async def call(self, call: ScriptCall[R]) -> R:
        """Run a prepared call; its parsed outcome.

        A plain EVALSHA, loading the script and running it once more on NOSCRIPT (after
        a Redis restart or SCRIPT FLUSH), as redis-py's ``Script.__call__`` does, but
        without its per-call copying of KEYS and ARGV into new tuples and its pipeline
        check: ~5 µs of every single send (issue 20). The client's ``evalsha``, as the
        ``Script`` object calls it: a Cluster client routes it by its first key.
        """
        script = self._scripts.get(call.name) or self[call.name]
        keys = call.keys
        client: Any = self._client  # redis-py types evalsha's reply loosely
        try:
            raw = await client.evalsha(script.sha, len(keys), *keys, *call.argv)
        except NoScriptError:
            await client.script_load(script.script)
            raw = await client.evalsha(script.sha, len(keys), *keys, *call.argv)
        return call.parse(raw)

    async def run_pipelined(
        self,
        calls: Sequence[ScriptCall[R]],
        *,
        extra: Sequence[Sequence[Any]] = (),
        keep: tuple[type[BaseException], ...] = (),
    ) -> tuple[list[R | BaseException], list[Any]]:
        """Run many calls of one script, then the ``extra`` commands, in one round trip.

        Returns the parsed outcomes in order, and the raw results of the extra commands
        (an exception object for a command that failed). A script error is raised,
        unless it is one of ``keep``: then it stands in the outcomes in place of that
        call's (so that a refusal of one call, such as Redis' OOM, does not hide what
        the other calls of the round trip did).
        After NOSCRIPT the script is loaded and the calls that missed it run again (with
        the extra commands, which must therefore be idempotent).

        Raises:
            CoordinatorUnavailableError: Redis still does not know the script after
                loading it.
        """
        if not calls:
            return [], []
        script = self[calls[0].name]
        outcomes: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        extra_results: list[Any] = []
        # Plain EVALSHA, not the Script object: in a pipeline, redis-py's Script makes the
        # pipeline ask SCRIPT EXISTS first, one more round trip on every batch. NOSCRIPT
        # (after a restart or SCRIPT FLUSH) is rare, so it is handled here instead.
        for _ in range(2):  # the second pass only after NOSCRIPT
            async with self._client.pipeline(transaction=False) as pipe:
                for i in pending:
                    call = calls[i]
                    # execute_command, not pipe.evalsha: a Cluster pipeline refuses the
                    # latter outright, yet routes a raw EVALSHA by its first key's slot
                    # (one pipeline per node, all nodes at once, MOVED/ASK followed).
                    pipe.execute_command(
                        "EVALSHA", script.sha, len(call.keys), *call.keys, *call.argv
                    )
                for command in extra:
                    pipe.execute_command(*command)
                results = await pipe.execute(raise_on_error=False)
            extra_results = results[len(pending) :]
            missing: list[int] = []
            for i, result in zip(pending, results, strict=False):
                if isinstance(result, NoScriptError):
                    missing.append(i)
                elif isinstance(result, keep):
                    outcomes[i] = result
                elif isinstance(result, BaseException):
                    raise result
                else:
                    outcomes[i] = calls[i].parse(result)
            if not missing:
                return outcomes, extra_results
            await self._client.script_load(script.script)
            pending = missing
        raise CoordinatorUnavailableError(f"Redis refused to load the script {calls[0].name!r}")
