"""pytest fixtures: ``coordination_redis`` (FakeRedis and real Redis) and ``key_prefix``.

Enable with ``pytest_plugins = ["tta_agent_coordination.testing.pytest_plugin"]``. Pass
``--coordination-backend=fake`` (or ``real``) to run one backend only. When the real
server is down the real-Redis variant is skipped, unless ``CI=true`` (or
``TTA_COORD_REQUIRE_REAL_REDIS=1``), where it fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from .backends import (
    RealRedisUnavailableError,
    delete_prefix,
    fake_redis,
    real_redis,
    real_redis_required,
    unique_prefix,
)

__all__ = ["coordination_redis", "key_prefix", "pytest_addoption", "pytest_generate_tests"]

_BACKENDS = ("fake", "real")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--coordination-backend`` (fake, real or both)."""
    parser.addoption(
        "--coordination-backend",
        choices=("both", *_BACKENDS),
        default="both",
        help="which Redis backends the coordination fixtures run on (default: both)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise every test that uses ``coordination_redis`` over the chosen backends."""
    if "coordination_redis" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--coordination-backend")
        backends = _BACKENDS if choice == "both" else (choice,)
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
            if real_redis_required():
                pytest.fail(f"{exc} (CI requires the real-Redis tests to run)")
            pytest.skip(str(exc))
    try:
        yield client
    finally:
        await delete_prefix(client, key_prefix)
        await client.aclose()
