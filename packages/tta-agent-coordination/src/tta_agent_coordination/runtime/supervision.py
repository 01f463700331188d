"""Keeping a worker's background tasks alive: restart with backoff, or give up loudly.

A worker runs three loops besides its handlers: the fetch loop, the lease keeper and
the maintenance loop. Each expects the back-end's outages and rides them out itself; any
other exception (a bug, a ``ValueError`` from decoding, a broken back-end) ends the loop.
:class:`TaskSupervisor` then logs it with its traceback, waits a jittered, growing delay
and starts the loop again. A loop that fails ``max_failures`` times in a row without
making progress in between cannot run: the supervisor gives up and tells the worker,
which stops (and deregisters) so that a replacement can take the agent over. See
``docs/worker.md`` ("When a background task fails").
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tta_agent_coordination.errors import (
    CircuitBreakerOpenError,
    ConfigurationError,
    CoordinatorUnavailableError,
    RegistryUnavailableError,
)
from tta_agent_coordination.runtime.stopping import wait_any

__all__ = ["OUTAGE_ERRORS", "Progress", "RestartPolicy", "TaskSupervisor"]

OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    CoordinatorUnavailableError,
    RegistryUnavailableError,
    CircuitBreakerOpenError,
    OSError,
    TimeoutError,
)
"""Errors that say the back-end is unreachable, not that the worker is broken.

The loops wait them out (logged, with backoff) for as long as they last, and never
give up on them: an outage would otherwise stop every worker at once, and a worker
cut off from Redis is not pretending to be alive anyway (its heartbeats fail too, its
registration expires, and it stops leasing; see ``docs/worker.md``, "Fencing")."""

Progress = Callable[[], None]
"""What a supervised loop calls after each round that worked: its failures are forgiven."""


@dataclass(frozen=True)
class RestartPolicy:
    """How a worker restarts a background task that failed, and when it gives up.

    The delay before restart ``n`` (1-based) is drawn from ``[d/2, d]`` where
    ``d = min(backoff_max_s, backoff_base_s * 2**(n-1))``: growing, bounded, and
    jittered so that many workers hit by the same fault do not retry in step. With the
    defaults a task that keeps failing is restarted 7 times over about 6-11 s, and the
    8th failure in a row makes the worker stop: long enough to ride out a transient
    fault, short enough that a broken worker does not hold its agent id for long.

    Args:
        max_failures: failures in a row (with no progress in between) that make the
            worker give up; at least 1.
        backoff_base_s: the first restart delay (before jitter).
        backoff_max_s: the largest restart delay (before jitter).

    Raises:
        ConfigurationError: a value is out of range.
    """

    max_failures: int = 8
    backoff_base_s: float = 0.1
    backoff_max_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_failures < 1:
            raise ConfigurationError(f"max_failures must be >= 1, got {self.max_failures}")
        if not self.backoff_base_s > 0:
            raise ConfigurationError(f"backoff_base_s must be > 0, got {self.backoff_base_s}")
        if not self.backoff_max_s >= self.backoff_base_s:
            raise ConfigurationError(
                f"backoff_max_s must be >= backoff_base_s, got {self.backoff_max_s}"
            )

    def delay(self, failures: int) -> float:
        """Seconds to wait before restarting a task that has failed ``failures`` times."""
        step = min(self.backoff_max_s, self.backoff_base_s * 2 ** min(failures - 1, 60))
        return step / 2 + random.random() * step / 2


class TaskSupervisor:
    """Runs a worker's background loops, restarting each one that fails.

    Args:
        policy: restart delays and the limit.
        log: the worker's logger.
        stopping: set when the worker stops; a restart delay ends early then.
        give_up: called with a reason when a task failed ``max_failures`` times in a
            row; the worker stops.
    """

    def __init__(
        self,
        policy: RestartPolicy,
        log: Any,
        stopping: asyncio.Event,
        give_up: Callable[[str], None],
    ) -> None:
        self._policy = policy
        self._log = log
        self._stopping = stopping
        self._give_up = give_up

    def start(
        self,
        name: str,
        loop_fn: Callable[[Progress], Awaitable[None]],
        *,
        task_name: str,
        ends_on_stop: bool = False,
    ) -> asyncio.Task[None]:
        """Start ``loop_fn(progress)`` under supervision in a task named ``task_name``.

        The loop ends the task by returning; it is restarted when it raises. A loop
        that ``ends_on_stop`` is restarted at once when the worker is stopping (it then
        returns); the others keep their delay (they run until cancelled).
        """
        return asyncio.get_running_loop().create_task(
            self._supervise(name, loop_fn, ends_on_stop), name=task_name
        )

    async def _supervise(
        self, name: str, loop_fn: Callable[[Progress], Awaitable[None]], ends_on_stop: bool
    ) -> None:
        failures = 0

        def progress() -> None:
            nonlocal failures
            failures = 0

        log = self._log
        while True:
            try:
                await loop_fn(progress)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                error = f"{type(exc).__name__}: {exc}"
                if failures >= self._policy.max_failures:
                    log.critical(
                        "worker_task_gave_up",
                        task=name,
                        failures=failures,
                        error=error,
                        exc_info=exc,
                    )
                    self._give_up(f"{name} failed {failures} times in a row: {error}")
                    return
                delay = self._policy.delay(failures)
                log.error(
                    "worker_task_failed",
                    task=name,
                    failures=failures,
                    limit=self._policy.max_failures,
                    restart_in=round(delay, 3),
                    error=error,
                    exc_info=exc,
                )
            if ends_on_stop:
                await wait_any(self._stopping, timeout=delay)
            else:
                await asyncio.sleep(delay)
