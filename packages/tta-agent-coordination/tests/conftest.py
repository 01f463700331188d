"""Fixtures shared by the core package's synchronous real-Redis tests (the CLI's).

``redis_url`` is the real Redis the tests may use (skipped when it does not answer,
failed instead when CI requires it); ``prefix`` is a fresh key prefix on it, deleted
after the test. Async tests set up their own clients (``tta_agent_coordination.testing``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from tta_agent_coordination.testing import (
    DEFAULT_TEST_REDIS_URL,
    RealRedisUnavailableError,
    delete_prefix,
    real_redis,
    unique_prefix,
)
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis URL (``TTA_COORD_TEST_REDIS_URL``), checked once per session."""
    url = os.environ.get("TTA_COORD_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)

    async def check() -> None:
        client = await real_redis(url)
        await client.aclose()

    try:
        asyncio.run(check())
    except RealRedisUnavailableError as exc:
        skip_or_fail(str(exc))
    return url


@pytest.fixture
def prefix(redis_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh key prefix on the real Redis, named after the test's module; deleted after."""
    value = unique_prefix(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))
    yield value

    async def clean() -> None:
        client = await real_redis(redis_url)
        try:
            await delete_prefix(client, value)
        finally:
            await client.aclose()

    asyncio.run(clean())
