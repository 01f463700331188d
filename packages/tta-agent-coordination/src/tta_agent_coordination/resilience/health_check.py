"""A breaker's health check: a cheap call (a PING) that says whether the dependency answers.

A :class:`~tta_agent_coordination.resilience.CircuitBreaker` given a health check uses it
twice (see ``docs/resilience.md``, "Health checks"):

* before a half-open probe runs, so that a probe never hangs on a dependency that does not
  answer: a failed check reopens the breaker (for longer) and the call is refused;
* after a call fails while the breaker is closed, so that a dependency known to be down
  opens the breaker at once instead of after ``failure_threshold`` failures.

:class:`HealthCheck` runs at most one check at a time per breaker (concurrent callers share
its result), bounds it with ``health_check_timeout_s``, and classifies the result with the
breaker's config, as a call's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.resilience.breaker_state import Outcome, outcome_of
from tta_agent_coordination.resilience.config import CircuitBreakerConfig

__all__ = ["HealthCheck", "HealthCheckFn"]

HealthCheckFn = Callable[[], Awaitable[object]]
"""A health check: returns (anything but ``False``) when the dependency answers, raises or
returns ``False`` when it does not."""

_log = get_logger("tta_agent_coordination.resilience")


class HealthCheck:
    """Runs ``check`` for one breaker: one run at a time, bounded, its outcome classified.

    Args:
        name: the breaker's name (for logs).
        check: the health check.
        config: the breaker's config: ``health_check_timeout_s`` bounds a run; ``record``
            and ``ignore`` classify what it raises (an ignored error is ``NEUTRAL``: it
            says nothing about the dependency).
        clock: monotonic clock, for :meth:`run`'s ``max_age_s``.
    """

    def __init__(
        self,
        name: str,
        check: HealthCheckFn,
        config: CircuitBreakerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._check = check
        self._config = config
        self._clock = clock
        self._running: asyncio.Task[Outcome] | None = None
        self._last: tuple[float, Outcome] | None = None
        self.runs = 0
        """Checks run so far."""
        self.failures = 0
        """Checks that failed (raised a counted error, timed out or returned False)."""

    async def run(self, *, max_age_s: float = 0.0) -> Outcome:
        """The outcome of a check: ``SUCCESS``, ``FAILURE`` or ``NEUTRAL``.

        Joins the check already running, if any; with ``max_age_s``, returns the outcome
        of a check that ended less than ``max_age_s`` ago instead of running another.
        Cancelling the caller does not cancel the check (others may wait for it).
        """
        if self._last is not None and self._clock() - self._last[0] < max_age_s:
            return self._last[1]
        loop = asyncio.get_running_loop()
        task = self._running
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._running = loop.create_task(self._once(), name=f"health-{self._name}")
        return await asyncio.shield(task)

    async def wait(self) -> None:
        """Wait for the check running now, if any, to end."""
        task = self._running
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            await asyncio.wait([task])

    async def _once(self) -> Outcome:
        self.runs += 1
        timeout = asyncio.timeout(self._config.health_check_timeout_s)
        error: BaseException | None = None
        try:
            async with timeout:
                answered = await self._check()
            outcome = Outcome.FAILURE if answered is False else Outcome.SUCCESS
        except Exception as exc:
            error = exc
            expired = timeout.expired()
            outcome = Outcome.FAILURE if expired else outcome_of(self._config, exc)
        if outcome is Outcome.FAILURE:
            self.failures += 1
            _log.info(
                "circuit_breaker_health_check_failed",
                breaker=self._name,
                error=repr(error) if error is not None else "returned False",
            )
        self._last = (self._clock(), outcome)
        return outcome
