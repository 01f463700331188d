"""Every key a registry script touches is one of its KEYS (Redis Cluster by construction).

Watched with MONITOR on the real server: each script run is bracketed by ECHO markers,
and every key of this test's prefix named by a command the script ran must have been
passed in KEYS.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tta_agent_coordination.errors import StaleRegistrationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.lua import ScriptSet
from tta_agent_coordination.testing import (
    RealRedisUnavailableError,
    delete_prefix,
    real_redis,
)
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail

from .conftest import FakeAgent

pytestmark = pytest.mark.real_redis

ALL_SCRIPTS = {
    "registry_peek",
    "registry_register",
    "registry_heartbeat",
    "registry_deregister",
    "registry_read",
    "registry_due",
    "registry_reap",
}


async def _connect():
    try:
        return await real_redis()
    except RealRedisUnavailableError as exc:
        skip_or_fail(str(exc))


class Watch:
    """Records, per script run, the KEYS passed and the prefixed keys its commands named."""

    def __init__(self, client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.runs: list[tuple[str, list[str]]] = []
        self.lines: list[tuple[str, str]] = []

    def wrap(self, run: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def watched(scripts: ScriptSet, name: str, keys: list[str], args: list[Any]):
            n = len(self.runs)
            self.runs.append((name, list(keys)))
            await self.client.echo(f"{self.prefix}|start|{n}")
            try:
                return await run(scripts, name, keys, args)
            finally:
                await self.client.echo(f"{self.prefix}|end|{n}")

        return watched

    def touched_outside_keys(self) -> list[tuple[str, str]]:
        """(script, key) for every prefixed key a script named without declaring it."""
        bad: list[tuple[str, str]] = []
        current: int | None = None
        for client_type, command in self.lines:
            if command.startswith(f"ECHO {self.prefix}|start|"):
                current = int(command.rsplit("|", 1)[1])
            elif command.startswith(f"ECHO {self.prefix}|end|"):
                current = None
            elif client_type == "lua":
                assert current is not None, f"a script command outside any run: {command}"
                name, declared = self.runs[current]
                for token in command.split(" "):
                    if token.startswith(f"{self.prefix}:") and token not in declared:
                        bad.append((name, token))
        return bad


async def test_registry_scripts_touch_only_their_keys(monkeypatch, key_prefix):
    from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry

    client, watcher = await _connect(), await _connect()
    watch = Watch(client, key_prefix)
    monkeypatch.setattr(ScriptSet, "run", watch.wrap(ScriptSet.run))
    listening = asyncio.Event()
    done = f"{key_prefix}|done"

    async def listen() -> None:
        async with watcher.monitor() as monitor:
            listening.set()
            async for entry in monitor.listen():
                command = entry["command"]
                if key_prefix in command:
                    watch.lines.append((entry["client_type"], command))
                if command == f"ECHO {done}":
                    return

    reader = asyncio.create_task(listen())
    await listening.wait()
    await asyncio.sleep(0.1)  # MONITOR is active once its reply is in

    one = RedisAgentRegistry(client, key_prefix, heartbeat_ttl_s=5)
    two = RedisAgentRegistry(client, key_prefix, heartbeat_ttl_s=5)
    short = RedisAgentRegistry(client, key_prefix, heartbeat_ttl_s=0.3, state_retention_s=60)
    wb = AgentId("world_builder", "w1")
    try:
        await one.register(FakeAgent(wb, capabilities=["plan", "route"], state={"n": 1}))
        await one.heartbeat(wb)
        await one.set_status(wb, "busy")
        # a takeover with other capabilities: the old ones are only found in the record
        await two.register(FakeAgent(wb, capabilities=["fly"]), takeover=True)
        with pytest.raises(StaleRegistrationError):
            await one.heartbeat(wb)
        await two.deregister(wb)
        await one.register_id(wb, capabilities=["swim"])
        assert await two.evict(wb) is True  # whose capabilities it does not know
        # expiry seen by a heartbeat, by a new registration and by the reaper
        for n, caps in enumerate((["a"], ["b"], ["c"])):
            await short.register_id(AgentId("mortal", f"m{n}"), capabilities=caps)
        await asyncio.sleep(0.4)
        with pytest.raises(StaleRegistrationError):
            await short.heartbeat(AgentId("mortal", "m0"))
        await two.register_id(AgentId("mortal", "m1"), capabilities=["other"])
        assert await two.reap_expired() == [AgentId("mortal", "m2")]
        await two.get(AgentId("mortal", "m1"))
        await two.list_registered()
        await two.discover(type="mortal", capability="other", alive_only=False)
        await two.discover(capability="other")
    finally:
        for registry in (one, two, short):
            await registry.aclose(deregister=False)
        await client.echo(done)
        await asyncio.wait_for(reader, 10)
        await delete_prefix(client, key_prefix)
        await client.aclose()
        await watcher.aclose()

    assert {name for name, _ in watch.runs} == ALL_SCRIPTS
    assert any(client_type == "lua" for client_type, _ in watch.lines)
    assert watch.touched_outside_keys() == []
