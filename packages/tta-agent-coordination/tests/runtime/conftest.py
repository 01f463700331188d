import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tta_agent_coordination import (
    AgentId,
    AgentWorker,
    RedisAgentRegistry,
    RedisMessageCoordinator,
)

CLIENT = AgentId("client")
SERVER = AgentId("server", "s1")


@pytest.fixture
async def coordinator(coordination_redis, key_prefix) -> AsyncIterator[RedisMessageCoordinator]:
    coord = RedisMessageCoordinator(
        coordination_redis,
        key_prefix=key_prefix,
        backoff_base=0.05,
        backoff_factor=1.0,
        backoff_max=0.05,
        retry_attempts=2,
    )
    yield coord
    await coord.aclose()


@pytest.fixture
async def registry(
    coordination_redis, key_prefix, coordinator
) -> AsyncIterator[RedisAgentRegistry]:
    reg = RedisAgentRegistry(
        coordination_redis, key_prefix=key_prefix, heartbeat_ttl_s=3.0, coordinator=coordinator
    )
    yield reg
    await reg.aclose()


WorkerFactory = Callable[..., AgentWorker]


@pytest.fixture
async def make_worker(coordinator, registry) -> AsyncIterator[WorkerFactory]:
    """Builds workers with test-friendly timings; every one is stopped at teardown."""
    made: list[AgentWorker] = []

    def factory(agent_id: AgentId = SERVER, **options: Any) -> AgentWorker:
        options.setdefault("poll_interval", 0.1)
        options.setdefault("visibility_timeout", 2.0)
        options.setdefault("grace_period", 2.0)
        options.setdefault("maintenance_interval", 0.2)
        worker = AgentWorker(
            options.pop("coordinator", coordinator),
            options.pop("registry", registry),
            agent_id,
            **options,
        )
        made.append(worker)
        return worker

    yield factory
    for worker in made:
        await worker.stop(grace_period=0)


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float = 10.0,  # noqa: ASYNC109
) -> None:
    """Wait until ``check()`` is true (polling), failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class HeldHandlers:
    """Handlers that hold their message until :attr:`release` is set, counting how many
    run at once (:attr:`running`) and the most that ever did (:attr:`peak`)."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.release = asyncio.Event()

    async def hold(self) -> None:
        """A handler's body: count itself in, wait for the release, count itself out."""
        self.running += 1
        self.peak = max(self.peak, self.running)
        await self.release.wait()
        self.running -= 1
