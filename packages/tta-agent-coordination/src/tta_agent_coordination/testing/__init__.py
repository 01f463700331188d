"""Test helpers for host applications: FakeRedis-backed clients and pytest fixtures.

Install the ``testing`` extra (``tta-agent-coordination[testing]``) and enable the plugin
in your ``conftest.py``::

    pytest_plugins = ["tta_agent_coordination.testing.pytest_plugin"]

Every fixture that takes ``coordination_redis`` then runs twice: on an in-process
FakeRedis (with Lua) and on the real Redis named by ``TTA_COORD_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/15``). Each test gets its own key prefix and its keys are deleted
afterwards; nothing ever flushes a database.
"""

from __future__ import annotations

from tta_agent_coordination.testing.server import (
    RedisServerNotFoundError,
    free_port,
    start_redis_server,
    stop_redis_server,
)

from .backends import (
    DEFAULT_TEST_REDIS_URL,
    RealRedisUnavailableError,
    delete_prefix,
    fake_redis,
    real_redis,
    real_redis_required,
    unique_prefix,
)

__all__ = [
    "DEFAULT_TEST_REDIS_URL",
    "RealRedisUnavailableError",
    "RedisServerNotFoundError",
    "delete_prefix",
    "fake_redis",
    "free_port",
    "real_redis",
    "real_redis_required",
    "start_redis_server",
    "stop_redis_server",
    "unique_prefix",
]
