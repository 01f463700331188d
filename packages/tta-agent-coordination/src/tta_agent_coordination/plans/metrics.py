"""Per-mode metrics of the plan runtime: runs, steps, duration and outcome.

:class:`PlanMetrics` is what the runtime reports to; :class:`InMemoryPlanMetrics` keeps
counts (tests, the CLI), :class:`PrometheusPlanMetrics` (the ``prometheus`` extra) exports
them. Every series is labelled by ``mode`` (legacy, single_shot, multi_step), so the
legacy and enhanced paths of an A/B rollout can be compared side by side.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["InMemoryPlanMetrics", "NoOpPlanMetrics", "PlanMetrics", "PrometheusPlanMetrics"]


class PlanMetrics(Protocol):
    """Receives the runtime's measurements (one call per run or step, never per event)."""

    def run_started(self, mode: str) -> None:
        """A run was created."""
        ...

    def step_started(self, mode: str) -> None:
        """A step attempt was started."""
        ...

    def run_finished(self, mode: str, status: str, duration_s: float) -> None:
        """A run ended with ``status`` after ``duration_s`` seconds."""
        ...


class NoOpPlanMetrics:
    """Discards everything (the default)."""

    def run_started(self, mode: str) -> None:
        """Discard."""

    def step_started(self, mode: str) -> None:
        """Discard."""

    def run_finished(self, mode: str, status: str, duration_s: float) -> None:
        """Discard."""


class InMemoryPlanMetrics:
    """Counts per mode in memory (for tests and small deployments)."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        """Runs started, per mode."""
        self.steps: Counter[str] = Counter()
        """Step attempts started, per mode."""
        self.outcomes: Counter[tuple[str, str]] = Counter()
        """Runs ended, per (mode, status)."""
        self.durations: dict[str, list[float]] = {}
        """Durations of ended runs, per mode."""

    def run_started(self, mode: str) -> None:
        """Count a run."""
        self.runs[mode] += 1

    def step_started(self, mode: str) -> None:
        """Count a step attempt."""
        self.steps[mode] += 1

    def run_finished(self, mode: str, status: str, duration_s: float) -> None:
        """Count an outcome and keep its duration."""
        self.outcomes[(mode, status)] += 1
        self.durations.setdefault(mode, []).append(duration_s)


class PrometheusPlanMetrics:
    """The plan runtime's Prometheus series, labelled by ``mode``.

    ``tta_plan_runs_total``, ``tta_plan_steps_total``, ``tta_plan_run_outcomes_total``
    (also by ``status``) and ``tta_plan_run_duration_seconds``.

    Args:
        registry: the collector registry (a new one by default; serve it with
            ``serve_metrics``).

    Raises:
        ImportError: ``prometheus-client`` is not installed (the ``prometheus`` extra).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        self._runs = Counter("tta_plan_runs", "Plan runs started", ["mode"], registry=self.registry)
        self._steps = Counter(
            "tta_plan_steps", "Step attempts started", ["mode"], registry=self.registry
        )
        self._outcomes = Counter(
            "tta_plan_run_outcomes",
            "Plan runs ended",
            ["mode", "status"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "tta_plan_run_duration_seconds",
            "Time from start to end of a run",
            ["mode"],
            registry=self.registry,
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
        )

    def run_started(self, mode: str) -> None:
        """Count a run."""
        self._runs.labels(mode=mode).inc()

    def step_started(self, mode: str) -> None:
        """Count a step attempt."""
        self._steps.labels(mode=mode).inc()

    def run_finished(self, mode: str, status: str, duration_s: float) -> None:
        """Count an outcome and observe its duration."""
        self._outcomes.labels(mode=mode, status=status).inc()
        self._duration.labels(mode=mode).observe(max(0.0, duration_s))
