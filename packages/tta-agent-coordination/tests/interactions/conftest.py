import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tta_agent_coordination.interactions import AgentMessaging
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator

ALICE = AgentId("user", "alice")
BOB = AgentId("support", "bob")
CAROL = AgentId("support", "carol")


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
async def messaging(coordinator) -> AsyncIterator[AgentMessaging]:
    m = AgentMessaging(coordinator, handler_visibility_timeout=2.0)
    await m.register_organization("acme", name="Acme")
    for agent in (ALICE, BOB, CAROL):
        await m.register_agent(agent, organization="acme")
    async with m:
        yield m


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float = 10.0,  # noqa: ASYNC109
) -> None:
    """Wait until ``check()`` is true, failing after ``timeout`` seconds."""
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
