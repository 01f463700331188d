"""A worker in a real process: SIGTERM with work in flight, and a hard crash (real Redis)."""

import asyncio
import os
import signal
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    AgentWorker,
    MessageContext,
    MessageType,
    RedisAgentRegistry,
    RedisMessageCoordinator,
)
from tta_agent_coordination.errors import AgentAlreadyRegisteredError
from tta_agent_coordination.testing import (
    DEFAULT_TEST_REDIS_URL,
    RealRedisUnavailableError,
    delete_prefix,
    real_redis,
    unique_prefix,
)
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail

from .conftest import CLIENT, SERVER, eventually

SCRIPT = Path(__file__).with_name("worker_process.py")


@pytest.fixture
async def real() -> AsyncIterator[tuple[Any, str, str]]:
    url = os.environ.get("TTA_COORD_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    try:
        client = await real_redis(url)
    except RealRedisUnavailableError as exc:
        skip_or_fail(str(exc))
    prefix = unique_prefix()
    try:
        yield client, url, prefix
    finally:
        await delete_prefix(client, prefix)
        await client.aclose()


async def start_worker_process(
    url: str, prefix: str, seconds: float, agent: AgentId = SERVER
) -> Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        url,
        prefix,
        str(seconds),
        str(agent),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(20):
            while (line := await proc.stdout.readline()) and line.strip() != b"ready":
                pass
        assert line.strip() == b"ready"
    except BaseException:
        proc.kill()  # never leave a worker process behind
        await proc.wait()
        raise
    # Keep reading its log lines so that a full pipe never blocks the worker.
    drains.add(asyncio.ensure_future(proc.stdout.read()))
    return proc


drains: set[asyncio.Future[bytes]] = set()


def events(n: int) -> list[AgentMessage]:
    return [
        AgentMessage(sender=CLIENT, recipient=SERVER, message_type=MessageType.EVENT, payload={})
        for _ in range(n)
    ]


async def test_sigterm_finishes_in_flight_work_and_deregisters(real):
    client, url, prefix = real
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    registry = RedisAgentRegistry(client, key_prefix=prefix)
    proc = await start_worker_process(url, prefix, seconds=1.0)
    try:
        await coordinator.send_many(events(3))
        await eventually(
            lambda: _leased(coordinator, 3)
        )  # all three handlers are running in the other process
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0
    stats = await coordinator.queue_stats(SERVER)
    assert stats.unsettled == 0  # in-flight work finished and was acked
    assert await registry.get(SERVER) is None  # deregistered, not merely expired


async def _leased(coordinator: RedisMessageCoordinator, n: int, queue: AgentId = SERVER) -> bool:
    return (await coordinator.queue_stats(queue)).leased == n


async def test_a_killed_workers_message_is_finished_by_its_replacement(real):
    client, url, prefix = real
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    registry = RedisAgentRegistry(
        client, key_prefix=prefix, heartbeat_ttl_s=1.5, coordinator=coordinator
    )
    proc = await start_worker_process(url, prefix, seconds=60.0)
    try:
        await coordinator.send_many(events(1))
        await eventually(lambda: _leased(coordinator, 1))
        proc.kill()  # no shutdown, no deregistration: its lease is 30 s long
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    attempts: list[int] = []

    async def finish(ctx: MessageContext[Any]) -> None:
        attempts.append(ctx.attempts)

    def new_worker() -> AgentWorker:
        worker = AgentWorker(
            coordinator, registry, SERVER, poll_interval=0.1, maintenance_interval=0.2
        )
        worker.add_handler(finish, MessageType.EVENT)
        return worker

    # The dead process's registration expires after 1.5 s; registering over an
    # expired holder hands its leased message back at once (no 30 s wait).
    async def start_when_expired() -> AgentWorker:
        while True:
            worker = new_worker()
            try:
                await worker.start()
                return worker
            except AgentAlreadyRegisteredError:
                await asyncio.sleep(0.2)

    replacement = await asyncio.wait_for(start_when_expired(), 10)
    try:
        await eventually(lambda: attempts == [2], timeout=10)
        await eventually(lambda: replacement.stats.succeeded == 1)
    finally:
        await replacement.stop(grace_period=0)
        await registry.aclose()
    assert (await coordinator.queue_stats(SERVER)).unsettled == 0


async def test_a_killed_instances_type_queue_work_goes_to_another_instance_at_once(real):
    # The killed process held two messages of its type queue under 30 s leases. Once a
    # monitor reaps its registration (1.5 s liveness), another instance of the type gets
    # them: the release covers the type-queue leases it held, not only its own queue.
    client, url, prefix = real
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    registry = RedisAgentRegistry(client, key_prefix=prefix, coordinator=coordinator)
    monitor = RedisAgentRegistry(client, key_prefix=prefix)
    any_server = SERVER.type_queue
    proc = await start_worker_process(url, prefix, seconds=60.0)
    try:
        to_type = [m.model_copy(update={"recipient": any_server}) for m in events(2)]
        assert all(r.delivered for r in await coordinator.send_many(to_type))
        await eventually(
            lambda: _leased(coordinator, 2, any_server)
        )  # both held by the other process, 30 s leases
        proc.kill()  # no shutdown, no deregistration
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    attempts: list[int] = []

    async def finish(ctx: MessageContext[Any]) -> None:
        attempts.append(ctx.attempts)

    other = AgentWorker(coordinator, registry, AgentId(SERVER.type, "s2"), poll_interval=0.1)
    other.add_handler(finish, MessageType.EVENT)
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    await other.start()
    try:

        async def reaped() -> bool:
            return SERVER in await monitor.recover_failed(coordinator)

        await eventually(reaped, timeout=10)
        await eventually(lambda: attempts == [2, 2], timeout=10)
        assert loop.time() - killed_at < 20  # not after the 30 s visibility timeout
    finally:
        await other.stop(grace_period=0)
        await registry.aclose()
        await monitor.aclose()
    assert (await coordinator.queue_stats(any_server)).unsettled == 0
