"""A driver SIGKILLed at every transition of a run, in a real subprocess: another driver
finishes the run, and the outcome (steps, results, what each agent was asked) equals an
uninterrupted run's. Needs the real Redis (the processes share it)."""

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tta_agent_coordination import RedisMessageCoordinator
from tta_agent_coordination.plans import PlanRuntime, RunResult, RunStatus, RuntimeFlags, Task
from tta_agent_coordination.testing import (
    RealRedisUnavailableError,
    delete_prefix,
    real_redis,
    unique_prefix,
)
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail

from .conftest import Agents, eventually
from .rules import CHECKER, WRITER, StatelessPlanner, StatelessReflector

pytestmark = [pytest.mark.slow, pytest.mark.real_redis]

DRIVER = Path(__file__).with_name("driver_main.py")
TASK = Task(agent=WRITER, payload={"text": "kill me"})
# The uninterrupted run writes its state this many times (after start): planned,
# draft sent/finished/reflected, check sent/failed/reflected (retry), check
# sent/finished/reflected (completed).
WRITES = 10


@pytest.fixture
async def shared() -> AsyncIterator[
    tuple[RedisMessageCoordinator, RedisMessageCoordinator, str, str]
]:
    try:
        client = await real_redis()
    except RealRedisUnavailableError as exc:
        skip_or_fail(str(exc))
    prefix = unique_prefix("plankill")
    # The step agents' queues fail a request at once (retry_attempts=0: the run retries
    # it); the drivers' coordinator redelivers a message whose driver died (a lease that
    # expires counts as a delivery).
    coordinator = RedisMessageCoordinator(
        client, key_prefix=prefix, backoff_base=0.05, backoff_max=0.05, retry_attempts=0
    )
    drivers = RedisMessageCoordinator(
        client, key_prefix=prefix, backoff_base=0.05, backoff_max=0.05, retry_attempts=5
    )
    url = client.connection_pool.connection_kwargs
    redis_url = f"redis://{url.get('host', '127.0.0.1')}:{url.get('port', 6379)}/{url.get('db', 0)}"
    try:
        yield coordinator, drivers, prefix, redis_url
    finally:
        await coordinator.aclose()
        await drivers.aclose()
        await delete_prefix(client, prefix)
        await client.aclose()


def runtime_for(coordinator: RedisMessageCoordinator) -> PlanRuntime:
    return PlanRuntime(
        coordinator,
        planner=StatelessPlanner(),
        reflector=StatelessReflector(),
        flags=RuntimeFlags(enhanced=True, reflection=True, run_timeout_s=120.0),
    )


def outcome(result: RunResult, agents: Agents) -> tuple[Any, ...]:
    return (
        result.status,
        result.result,
        [(r.plan_version, r.step_id, r.attempt, r.result) for r in result.steps],
        sorted(name for name, _ in agents.calls),
    )


async def run_once(
    coordinator: RedisMessageCoordinator,
    drivers: RedisMessageCoordinator,
    prefix: str,
    url: str,
    kill_at: int,
    point: str,
) -> tuple[Any, ...]:
    agents = Agents(coordinator)
    await agents.start(WRITER, "w1")
    await agents.start(CHECKER, "c1")
    agents.fail_first.add("check")
    runtime = runtime_for(drivers)
    config = {"redis_url": url, "prefix": prefix, "kill_at": kill_at, "kill_point": point}
    proc = subprocess.Popen(  # noqa: ASYNC220 - a process to SIGKILL, started once
        [sys.executable, str(DRIVER), json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    replacement = None
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert line.strip() == b"ready"
        run_id = await runtime.start(TASK, run_id=f"k{kill_at}{point}")

        async def died_or_done() -> bool:
            return proc.poll() is not None or (await runtime.status(run_id)).terminal

        await eventually(died_or_done, timeout=30)
        if kill_at:
            assert proc.poll() == -9, "the driver was not killed at its transition"
        # Another driver takes over (the dead one's lease expires after 1 s).
        replacement = runtime.worker(
            name="replacement",
            poll_interval=0.1,
            visibility_timeout=1.0,
            maintenance_interval=0.2,
            grace_period=0.0,
        )
        await replacement.start()

        async def done() -> bool:
            return (await runtime.status(run_id)).terminal

        await eventually(done, timeout=30)
        result = await runtime.result(run_id)
        return outcome(result, agents)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if replacement is not None:
            await replacement.stop(grace_period=0)
        await agents.stop()


async def test_a_driver_killed_at_any_transition_leaves_the_same_outcome(shared):
    coordinator, drivers, prefix, url = shared
    baseline = await run_once(coordinator, drivers, prefix, url, 0, "after")
    assert baseline[0] is RunStatus.COMPLETED
    assert baseline[3] == ["check", "check", "draft"]
    for kill_at in range(1, WRITES + 1):
        for point in ("before", "after"):
            got = await run_once(coordinator, drivers, prefix, url, kill_at, point)
            assert got == baseline, f"killed {point} write {kill_at}"
