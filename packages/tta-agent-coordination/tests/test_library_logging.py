"""The library never writes to standard output, whether or not the host configured logging.

Each case runs in a fresh interpreter: structlog's configuration is process-wide, and the
test session itself configures it (the workspace ``conftest.py``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
