"""pytest fixtures for agent tests without a Redis server (FakeRedis) or with one.

``coordination_redis`` (a FakeRedis or real Redis client), ``key_prefix``, and on top of
them ``coordination_coordinator``, ``coordination_registry`` and
``coordination_worker_factory`` (see ``docs/testing.md``). The async fixtures need
pytest-asyncio (``asyncio_mode = "auto"``, or mark the tests).

Enable with ``pytest_plugins = ["tta_agent_coordination.testing.pytest_plugin"]``. The
fixtures run on FakeRedis only, so a host application's tests never touch a server they
did not ask for. Opt in to the real server with ``--coordination-backend=real`` or
``both`` (or ``TTA_COORD_TEST_BACKEND``); when it is down the real-Redis variant is
skipped, unless ``TTA_COORD_REQUIRE_REAL_REDIS=1``, where it fails.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import pytest
import redis.asyncio as aioredis

from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.runtime.worker import AgentWorker, WorkerState

from .backends import (
    RealRedisUnavailableError,
    delete_prefix,
    fake_redis,
    real_redis,
    real_redis_required,
    unique_prefix,
)

__all__ = [
    "BACKEND_ENV",
    "WorkerFactory",
    "chosen_backends",
    "coordination_coordinator",
    "coordination_redis",
    "coordination_registry",
    "coordination_worker_factory",
    "key_prefix",
    "pytest_addoption",
    "pytest_configure",
    "pytest_generate_tests",
    "skip_or_fail",
]

WorkerFactory = Callable[..., AgentWorker]
"""``make(agent_id, **kwargs) -> AgentWorker``: the type of ``coordination_worker_factory``."""

_BACKENDS = ("fake", "real")
_CHOICES = ("fake", "real", "both")
BACKEND_ENV = "TTA_COORD_TEST_BACKEND"
"""Environment variable choosing the backends when ``--coordination-backend`` is absent."""


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test because a server it needs is missing, or fail it when that is required.

    For a host application's own real-Redis (or Postgres, or ``redis-server``) set-up, as
    ``coordination_redis`` does it: the test is skipped with ``reason``, unless
    ``TTA_COORD_REQUIRE_REAL_REDIS=1`` says the servers must be there (the CI that
    provides them), where it fails, so a run cannot silently lose its real-server tests.
    """
    if real_redis_required():
        pytest.fail(f"{reason} (TTA_COORD_REQUIRE_REAL_REDIS=1: the real-server tests must run)")
    pytest.skip(reason)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--coordination-backend`` (fake, real or both; default fake)."""
    parser.addoption(
        "--coordination-backend",
        choices=_CHOICES,
        default=None,
        help=(
            "which Redis backends the coordination fixtures run on: fake (the default), "
            f"real or both; ${BACKEND_ENV} sets it too"
        ),
    )


def chosen_backends(config: pytest.Config) -> tuple[str, ...]:
    """The backends of this run: the option, else ``$TTA_COORD_TEST_BACKEND``, else fake.

    Raises:
        pytest.UsageError: the environment variable holds another value.
    """
    choice = config.getoption("--coordination-backend")
    if choice is None:
        choice = os.environ.get(BACKEND_ENV, "").strip().lower() or "fake"
        if choice not in _CHOICES:
            raise pytest.UsageError(f"{BACKEND_ENV}={choice!r}: use one of {', '.join(_CHOICES)}")
    return _BACKENDS if choice == "both" else (choice,)


def pytest_configure(config: pytest.Config) -> None:
    """Check the backend choice once, before collection (a bad value is a usage error)."""
    chosen_backends(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise every test that uses ``coordination_redis`` over the chosen backends."""
    if "coordination_redis" in metafunc.fixturenames:
        backends = chosen_backends(metafunc.config)
        metafunc.parametrize("coordination_redis", backends, indirect=True)


@pytest.fixture
def key_prefix() -> str:
    """A key prefix of this test's own."""
    return unique_prefix()


@pytest.fixture
async def coordination_redis(
    request: pytest.FixtureRequest, key_prefix: str
) -> AsyncIterator[aioredis.Redis]:
    """A FakeRedis or real Redis client; keys under ``key_prefix`` are removed after."""
    backend = getattr(request, "param", "fake")
    if backend == "fake":
        client = fake_redis()
    else:
        try:
            client = await real_redis()
        except RealRedisUnavailableError as exc:
            skip_or_fail(str(exc))
    try:
        yield client
    finally:
        await delete_prefix(client, key_prefix)
        await client.aclose()


@pytest.fixture
async def coordination_coordinator(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> AsyncIterator[RedisMessageCoordinator]:
    """A ``RedisMessageCoordinator`` on ``coordination_redis`` under ``key_prefix``."""
    coordinator = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    try:
        yield coordinator
    finally:
        await coordinator.aclose()


@pytest.fixture
async def coordination_registry(
    coordination_redis: aioredis.Redis,
    key_prefix: str,
    coordination_coordinator: RedisMessageCoordinator,
) -> AsyncIterator[RedisAgentRegistry]:
    """A ``RedisAgentRegistry`` sharing the coordinator's Redis and prefix.

    It knows the coordinator, so that a replacement agent gets its leased messages back;
    agents still registered at the end are deregistered.
    """
    registry = RedisAgentRegistry(
        coordination_redis, key_prefix=key_prefix, coordinator=coordination_coordinator
    )
    try:
        yield registry
    finally:
        await registry.aclose()


@pytest.fixture
async def coordination_worker_factory(
    coordination_coordinator: RedisMessageCoordinator,
    coordination_registry: RedisAgentRegistry,
) -> AsyncIterator[WorkerFactory]:
    """``make(agent_id, **kwargs)``: a new ``AgentWorker`` on the test's coordinator.

    ``agent_id`` is an ``AgentId`` or its text (``"type:instance"``); ``registry=None``
    makes an unregistered worker; other keywords go to ``AgentWorker``. The worker is not
    started (``async with worker:`` or ``await worker.start()``); any still running at the
    end of the test is stopped.
    """
    made: list[AgentWorker] = []

    def make(agent_id: AgentId | str, **kwargs: Any) -> AgentWorker:
        kwargs.setdefault("registry", coordination_registry)
        # Short defaults keep tests quick: a stop is noticed within poll_interval.
        kwargs.setdefault("poll_interval", 0.05)
        kwargs.setdefault("grace_period", 1.0)
        agent = agent_id if isinstance(agent_id, AgentId) else AgentId.parse(agent_id)
        worker = AgentWorker(coordination_coordinator, agent_id=agent, **kwargs)
        made.append(worker)
        return worker

    try:
        yield make
    finally:
        for worker in made:
            if worker.state in (WorkerState.RUNNING, WorkerState.STOPPING):
                await worker.stop()
