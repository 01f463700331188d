import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry


class FakeAgent:
    """An agent object with every optional hook."""

    def __init__(
        self,
        agent_id: AgentId,
        name: str = "agent",
        capabilities: Any = (),
        state: dict[str, Any] | None = None,
        status: Any = None,
    ) -> None:
        self.agent_id = agent_id
        self.name = name
        self.capabilities = list(capabilities)
        self.state: dict[str, Any] = dict(state or {})
        self.imported: list[Any] = []
        self.status = status
        self.snapshot_delay = 0.0

    def export_state(self) -> dict[str, Any]:
        return dict(self.state)

    async def import_state(self, state: Any) -> None:
        self.imported.append(state)
        self.state = dict(state)

    async def status_snapshot(self) -> Any:
        if self.snapshot_delay:
            await asyncio.sleep(self.snapshot_delay)
        return self.status


class GateGuard:
    """A CallGuard that holds back calls of one operation until released."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def run(
        self, operation: str, fn: Callable[[], Awaitable[Any]], *, retry: bool = False
    ) -> Any:
        if operation == self.operation and not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        return await fn()


class FlakyGuard:
    """A CallGuard whose calls of one operation fail with ConnectionError a few times."""

    def __init__(self, operation: str, failures: int) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError

        self.error = RedisConnectionError
        self.operation = operation
        self.failures = failures
        self.calls = 0

    async def run(
        self, operation: str, fn: Callable[[], Awaitable[Any]], *, retry: bool = False
    ) -> Any:
        if operation == self.operation:
            self.calls += 1
            if self.failures > 0:
                self.failures -= 1
                raise self.error("injected connection drop")
        return await fn()


@pytest.fixture
async def make_registry(
    coordination_redis, key_prefix
) -> AsyncIterator[Callable[..., RedisAgentRegistry]]:
    made: list[RedisAgentRegistry] = []

    def make(**kwargs: Any) -> RedisAgentRegistry:
        kwargs.setdefault("key_prefix", key_prefix)
        registry = RedisAgentRegistry(coordination_redis, **kwargs)
        made.append(registry)
        return registry

    yield make
    for registry in made:
        await registry.aclose(deregister=False)


@pytest.fixture
def registry(make_registry) -> RedisAgentRegistry:
    return make_registry()
