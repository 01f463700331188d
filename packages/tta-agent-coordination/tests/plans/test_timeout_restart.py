"""A step timeout is a delayed message: it fires once, even across a Redis restart.

A private redis-server (append-only file, fsync always) on its own port: the shared test
server is never touched. The run's step goes to an agent nobody serves; the driver stops
and Redis is SIGKILLed while the timer waits; Redis restarts from its AOF, a new driver
starts, and each attempt's timeout is recorded exactly once.
"""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tta_agent_coordination import AgentId, RedisMessageCoordinator
from tta_agent_coordination.plans import PlanRuntime, RunStatus, RuntimeFlags, Task
from tta_agent_coordination.testing import (
    RedisServerNotFoundError,
    free_port,
    start_redis_server,
    stop_redis_server,
)
from tta_agent_coordination.testing.server import wait_until_up

from .conftest import eventually
from .rules import StatelessPlanner

pytestmark = pytest.mark.slow

NOBODY = AgentId("nobody")
TIMEOUT_S = 1.5


class OneStepNobodyServes(StatelessPlanner):
    async def plan(self, task, ctx):
        from tta_agent_coordination.plans import Plan, Step

        return Plan(steps=(Step(id="lonely", agent=NOBODY, timeout_s=TIMEOUT_S),))


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.proc = None

    async def start(self) -> None:
        try:
            self.proc = start_redis_server(
                self.port, appendonly=True, appendfsync="always", data_dir=self.data_dir
            )
        except RedisServerNotFoundError as exc:
            pytest.skip(str(exc))
        await wait_until_up(self.port)

    def kill(self) -> None:
        stop_redis_server(self.proc)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    made = Server(tmp_path)
    await made.start()
    try:
        yield made
    finally:
        made.kill()


def runtime_on(client: aioredis.Redis) -> tuple[RedisMessageCoordinator, PlanRuntime]:
    coordinator = RedisMessageCoordinator(client, key_prefix="restart")
    runtime = PlanRuntime(
        coordinator,
        planner=OneStepNobodyServes(),
        flags=RuntimeFlags(enhanced=True, max_retries_per_step=1, run_timeout_s=120),
    )
    return coordinator, runtime


async def test_a_step_timeout_fires_once_across_a_redis_restart(server: Server):
    client = aioredis.Redis(port=server.port)
    coordinator, runtime = runtime_on(client)
    driver = runtime.worker(poll_interval=0.1, grace_period=0, visibility_timeout=2.0)
    await driver.start()
    run_id = await runtime.start(Task(agent=NOBODY), run_id="restart-1")

    async def first_attempt_sent() -> bool:
        state = await runtime.store.load(run_id)
        return state is not None and state.sent

    await eventually(first_attempt_sent)
    await driver.stop(grace_period=0)
    await coordinator.aclose()
    await client.aclose()
    # Redis dies with the timer waiting; it restarts from its append-only file.
    server.kill()
    await server.start()

    client = aioredis.Redis(port=server.port)
    coordinator, runtime = runtime_on(client)
    driver = runtime.worker(poll_interval=0.1, grace_period=0, visibility_timeout=2.0)
    await driver.start()
    try:

        async def ended() -> bool:
            return (await runtime.status(run_id)).terminal

        await eventually(ended, timeout=30)
        result = await runtime.result(run_id)
        assert result.status is RunStatus.BUDGET_EXHAUSTED
        assert [
            (r.attempt, r.result.error.kind if r.result.error else "") for r in result.steps
        ] == [
            (1, "timeout"),
            (2, "timeout"),
        ]
        events = [e async for e in runtime.events(run_id)]
        failed = [e.data["key"] for e in events if e.kind == "step_failed"]
        assert failed == ["1:0:1", "1:0:2"]
        # Every timer was consumed or cancelled: nothing is left to fire again.
        stats = await coordinator.queue_stats(runtime.address)
        assert stats.delayed == 0
        assert stats.dead == 0

        # The requests nobody received expired with their attempts (dead-lettered).
        assert await coordinator.receive(NOBODY) is None
        nobody = await coordinator.queue_stats(NOBODY)
        assert (nobody.dead, nobody.unsettled) == (2, 0)
    finally:
        await driver.stop(grace_period=0)
        await coordinator.aclose()
        await client.aclose()
