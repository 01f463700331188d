"""The library never writes to standard output, whether or not the host configured logging.

Each case runs in a fresh interpreter: structlog's configuration is process-wide, and the
test session itself configures it (the workspace ``conftest.py``).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest

from tta_agent_coordination.observability.logging import LibraryLogger, get_logger

# A real library code path that logs: a breaker opening logs a warning, sends log at debug.
SCENARIO = textwrap.dedent(
    """
    import asyncio
    from tta_agent_coordination.observability.logging import get_logger

    log = get_logger("tta_agent_coordination.redis.coordinator", prefix="p")

    async def main():
        log.debug("sent", queue="a:default")
        log.info("registered", agent="a:default")
        log.warning("send_failed", error="redis unavailable")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("handler_failed", token="t1")

    asyncio.run(main())
    """
)


def run(prelude: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(prelude) + SCENARIO],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_an_unconfigured_host_gets_nothing_on_stdout_and_warnings_on_stderr() -> None:
    out = run("")
    assert out.stdout == ""
    assert "send_failed prefix='p' error='redis unavailable'" in out.stderr
    assert "handler_failed prefix='p' token='t1'" in out.stderr
    assert "ValueError: boom" in out.stderr  # the traceback, plainly, once
    assert out.stderr.count("Traceback (most recent call last)") == 1
    assert "registered" not in out.stderr  # INFO is below the last-resort level
    assert "sent" not in out.stderr.replace("send_failed", "")


def test_standard_logging_configuration_routes_the_library_events() -> None:
    out = run(
        """
        import logging, sys
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s|%(message)s")
        logging.getLogger("tta_agent_coordination").setLevel(logging.INFO)
        """
    )
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert "tta_agent_coordination.redis.coordinator|registered prefix='p' agent='a:default'" in (
        lines
    )
    assert out.stderr.count("Traceback (most recent call last)") == 1
    assert not any("|sent" in line for line in lines)  # DEBUG filtered by the host's level


def test_a_host_that_configures_structlog_is_followed() -> None:
    out = run(
        """
        import structlog, sys
        structlog.configure(
            processors=[structlog.processors.KeyValueRenderer(key_order=["event"])],
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        )
        """
    )
    assert out.stdout == ""
    assert "event='registered' prefix='p' agent='a:default'" in out.stderr
    assert "event='sent'" in out.stderr  # the host's configuration keeps every level


def test_bound_context_is_kept_and_can_be_dropped() -> None:
    log = get_logger("tta_agent_coordination.x", a=1).bind(b=2)
    assert isinstance(log, LibraryLogger)
    assert log.name == "tta_agent_coordination.x"
    assert repr(log) == "LibraryLogger('tta_agent_coordination.x', {'a': 1, 'b': 2})"
    assert repr(log.unbind("a")) == "LibraryLogger('tta_agent_coordination.x', {'b': 2})"
    assert repr(log.new(c=3)) == "LibraryLogger('tta_agent_coordination.x', {'c': 3})"


RESILIENCE_SCENARIO = textwrap.dedent(
    """
    import asyncio
    from tta_agent_coordination.resilience import CircuitBreaker, CircuitBreakerConfig
    from tta_agent_coordination.resilience.retry import RetryPolicy

    async def main():
        breaker = CircuitBreaker("llm", CircuitBreakerConfig(failure_threshold=1))

        async def down():
            raise ConnectionError("down")

        try:
            await breaker.call(down)
        except ConnectionError:
            pass
        policy = RetryPolicy(attempts=2, initial_s=0.001, jitter_s=0)
        try:
            await policy.call(down, operation="ping")
        except ConnectionError:
            pass

    asyncio.run(main())
    """
)


def test_breakers_and_retries_log_to_stderr_when_the_host_configured_nothing() -> None:
    # They called structlog.get_logger directly, whose default prints on standard output.
    out = subprocess.run(
        [sys.executable, "-c", RESILIENCE_SCENARIO],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout == ""
    assert "circuit_breaker_state_changed breaker='llm'" in out.stderr
    assert "retrying policy=" in out.stderr
    assert "retry_gave_up policy=" in out.stderr


@pytest.mark.parametrize(
    "module",
    [
        "tta_agent_coordination.resilience.circuit_breaker",
        "tta_agent_coordination.resilience.retry",
        "tta_agent_coordination.resilience.health_check",
        "tta_agent_coordination.redis.breaker_store",
    ],
)
def test_resilience_modules_use_the_library_logger(module: str) -> None:
    assert isinstance(importlib.import_module(module)._log, LibraryLogger)
