"""A dashboard served by uvicorn over the real Redis, with a demo-like workload beside it.

Runs in a thread of its own (one event loop for the server, a worker and a producer), so
a synchronous browser driver can use it from the test's thread. Used by the browser
tests and, through them, by ``scripts/dashboard-screenshots``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn

from tta_agent_coordination.dashboard import run_dashboard
from tta_agent_coordination.errors import PermanentError
from tta_agent_coordination.models import AgentId, AgentMessage, MessageType
from tta_agent_coordination.plans import (
    Assessment,
    Plan,
    PlanRuntime,
    RunContext,
    RuntimeFlags,
    Step,
    Task,
)
from tta_agent_coordination.redis.breaker_store import RedisBreakerStore
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.resilience import CircuitBreaker, CircuitBreakerConfig
from tta_agent_coordination.runtime.context import MessageContext
from tta_agent_coordination.runtime.worker import AgentWorker
from tta_agent_coordination.settings import CoordinationSettings
from tta_agent_coordination.testing import DEFAULT_TEST_REDIS_URL, delete_prefix

T = TypeVar("T")

WORKER = AgentId("world_builder", "w1")
IDLE = AgentId("narrator", "n1")
"""Registered, but nobody reads its queue: its depth and age grow."""
PRODUCER = AgentId("input_processor", "default")


class ScenePlanner:
    """Plans every task as two steps on its agent: an outline, then a description."""

    async def assess(self, task: Task) -> Assessment:
        return "multi_step"

    async def plan(self, task: Task, ctx: RunContext) -> Plan:
        return Plan(
            steps=tuple(
                Step(
                    id=part,
                    agent=task.agent,
                    payload={**task.payload, "part": part},
                    timeout_s=task.timeout_s,
                )
                for part in ("outline", "describe")
            )
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveDashboard:
    """``start()`` serves the dashboard and runs the workload; ``stop()`` ends both."""

    def __init__(self, prefix: str, token: str | None) -> None:
        self.prefix = prefix
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.handled: list[str] = []
        self._poisoned: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._coordinator: RedisMessageCoordinator | None = None
        self._runtime: PlanRuntime | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-dashboard", daemon=True)
        self.settings = CoordinationSettings(
            redis_url=os.environ.get("TTA_COORD_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL),
            key_prefix=prefix,
        )

    # --- from the test's thread ---------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"the workload did not start: {self._error!r}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._error is not None:
                raise RuntimeError("the dashboard failed") from self._error
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/queues", timeout=2) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("the dashboard did not answer")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(30)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the workload's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    @property
    def coordinator(self) -> RedisMessageCoordinator:
        assert self._coordinator is not None
        return self._coordinator

    @property
    def runtime(self) -> PlanRuntime:
        assert self._runtime is not None
        return self._runtime

    def start_run(self, run_id: str, agent: AgentId) -> None:
        """Start a plan run on ``agent`` (on ``IDLE`` it stays running: nobody answers)."""
        task = Task(agent=agent, payload={"scene": run_id}, timeout_s=600)
        self.call(self.runtime.start(task, run_id=run_id))

    def send(self, recipient: AgentId, payload: dict[str, Any], message_id: str) -> None:
        message = AgentMessage(
            message_id=message_id,
            sender=PRODUCER,
            recipient=recipient,
            message_type=MessageType.REQUEST,
            payload=payload,
        )
        result = self.call(self.coordinator.send_message(PRODUCER, recipient, message))
        assert result.delivered, result

    # --- on the workload's loop ---------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        settings = self.settings
        client = settings.redis_client(decode_responses=True)
        coordinator = settings.build_coordinator(client, store=None)
        self._coordinator = coordinator
        registry = settings.build_registry(client, coordinator=coordinator)
        worker = AgentWorker(
            coordinator, registry, WORKER, name="world builder", concurrency=2, poll_interval=0.1
        )

        @worker.on_request()
        async def handle(ctx: MessageContext[Any]) -> dict[str, str]:
            message_id = ctx.message.message_id
            if ctx.message.payload.get("poison") and message_id not in self._poisoned:
                self._poisoned.add(message_id)  # fails once: a replay then succeeds
                raise PermanentError("cannot describe the void")
            await asyncio.sleep(0.05)
            self.handled.append(message_id)
            return {"ok": message_id}

        await registry.register_id(IDLE, name="narrator")
        flags = RuntimeFlags(enhanced=True, run_timeout_s=3600)
        self._runtime = PlanRuntime(coordinator, planner=ScenePlanner(), flags=flags)
        driver = self._runtime.worker("d1", poll_interval=0.1, grace_period=0.5)
        breakers = RedisBreakerStore(client, key_prefix=self.prefix, timeout_s=2.0)
        config = CircuitBreakerConfig(failure_threshold=1, timeout_seconds=300)
        llm = CircuitBreaker("llm-api", config, breakers)
        await CircuitBreaker("search-api", config, breakers).areset()

        async def outage() -> None:
            raise ConnectionError("llm api down")

        with contextlib.suppress(ConnectionError):
            await llm.call(outage)

        async def produce() -> None:
            n = 0
            while True:
                n += 1
                for recipient in (WORKER, IDLE) if n % 3 == 0 else (WORKER,):
                    message = AgentMessage(
                        message_id=f"work-{n}-{recipient.type}",
                        sender=PRODUCER,
                        recipient=recipient,
                        message_type=MessageType.REQUEST,
                        payload={"kind": "describe", "n": n},
                    )
                    await coordinator.send_message(PRODUCER, recipient, message)
                await asyncio.sleep(0.25)

        def keep(server: uvicorn.Server) -> None:
            self._server = server

        try:
            async with worker, driver:
                producer = asyncio.create_task(produce())
                self._ready.set()
                try:
                    await run_dashboard(
                        settings, host="127.0.0.1", port=self.port, token=self.token, on_server=keep
                    )
                finally:
                    producer.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await producer
        finally:
            await registry.aclose()
            await coordinator.aclose()
            await delete_prefix(client, self.prefix)
            await client.aclose()
