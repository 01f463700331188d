"""Errors of the plan runtime (all ``CoordinationError``s)."""

from __future__ import annotations

from tta_agent_coordination.errors import CoordinationError

__all__ = ["PlanError", "RunNotFoundError", "RunWaitTimeoutError"]


class PlanError(CoordinationError):
    """Base class of the plan runtime's errors."""


class RunNotFoundError(PlanError, LookupError):
    """No run has this id (never started, or its retention has passed)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} not found (never started, or expired)")
        self.run_id = run_id


class RunWaitTimeoutError(PlanError, TimeoutError):
    """``execute`` gave up waiting for a run to end (the run itself goes on).

    Usually no driver is running (``runtime.worker()``), or the timeout given to
    ``execute`` is shorter than the run's own ``run_timeout_s``.
    """

    def __init__(self, run_id: str, timeout: float) -> None:
        super().__init__(
            f"run {run_id!r} did not end within {timeout:g} s (is a driver running? "
            "start one with runtime.worker())"
        )
        self.run_id = run_id
        self.timeout = timeout
