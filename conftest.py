"""Workspace-wide pytest set-up: the FakeRedis / real Redis fixtures of the core package.

Logging: structlog's unconfigured default renders each traceback with rich and every
frame's locals, which takes up to a second and blocks the event loop meanwhile, long
enough for a worker test's short lease to expire. The tests log as structlog does by
default, but with plain tracebacks.
"""

import os

import structlog

# The library reads only TTA_COORD_REQUIRE_REAL_REDIS (never the generic CI, which host
# applications' CI sets too). This repository's own CI must run its real-Redis and
# Postgres tests, so CI=true turns the requirement on here.
if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
    os.environ.setdefault("TTA_COORD_REQUIRE_REAL_REDIS", "1")

pytest_plugins = ["tta_agent_coordination.testing.pytest_plugin"]

TEST_PROCESSORS: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.StackInfoRenderer(),
    structlog.dev.set_exc_info,
    structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
    structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback),
]
"""The structlog processors of the test session (see the module docstring)."""

structlog.configure(processors=TEST_PROCESSORS)
