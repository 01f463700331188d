"""Helpers of the tests that run agents in child processes on the real Redis.

``messaging_on_real_redis`` sets up an ``AgentMessaging`` on a fresh key prefix with the
agents registered (and deletes the prefix after); ``ChildProcesses`` starts a helper
script, waits for its ``ready`` line and kills whatever is still running at the end;
``read_ledger`` reads the JSON lines a child wrote.
"""

import asyncio
import json
import os
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tta_agent_coordination.interactions import AgentMessaging
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import (
    DEFAULT_TEST_REDIS_URL,
    RealRedisUnavailableError,
    delete_prefix,
    real_redis,
    unique_prefix,
)
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail

__all__ = ["ChildProcesses", "messaging_on_real_redis", "read_ledger"]


@asynccontextmanager
async def messaging_on_real_redis(
    agents: Iterable[AgentId],
) -> AsyncIterator[tuple[AgentMessaging, str, str]]:
    """``(messaging, url, prefix)`` with ``agents`` registered in organization ``acme``.

    Skips when the real Redis does not answer, and fails instead when CI requires it.
    """
    url = os.environ.get("TTA_COORD_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    try:
        client = await real_redis(url)
    except RealRedisUnavailableError as exc:
        skip_or_fail(str(exc))
    prefix = unique_prefix()
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    messaging = AgentMessaging(coordinator)
    await messaging.register_organization("acme")
    for agent in agents:
        await messaging.register_agent(agent, organization="acme")
    try:
        yield messaging, url, prefix
    finally:
        await coordinator.aclose()
        await delete_prefix(client, prefix)
        await client.aclose()


class ChildProcesses:
    """Child processes running ``script``; each prints ``ready`` once it listens."""

    def __init__(self, script: Path) -> None:
        self.script = script
        self.procs: list[Process] = []

    async def start(self, *args: str, env: dict[str, str] | None = None) -> Process:
        """Start ``script`` with ``args`` and wait (up to 30 s) for its ``ready`` line."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(self.script),
            *args,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while (line := await proc.stdout.readline()) and line.strip() != b"ready":
                pass
        assert line.strip() == b"ready", f"{self.script.name} {args} ended before it was ready"
        return proc

    async def aclose(self) -> None:
        """Kill every child still running: a test never leaves one behind."""
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def read_ledger(ledger: Path) -> list[dict[str, Any]]:
    """The JSON lines a child appended to ``ledger`` (none if it wrote nothing yet)."""
    if not ledger.exists():
        return []
    return [json.loads(line) for line in ledger.read_text().splitlines() if line]
