"""``MetricsRefresher``: measures queues, shared breakers and the registry periodically.

The gauges a scrape shows are the last measurement, taken every ``interval_s`` in the
background rather than at scrape time, so that a scrape is instant and N scrapers (or a
slow Redis) never multiply the load. A worker process measures its own queues
(``queues=``); ``tta-coord exporter`` measures every queue of the prefix, the shared
breakers and the registry, so that N workers do not each scan every queue.

A part that fails (Redis down) is logged and counted
(``tta_coord_metrics_refresh_errors_total{part}``), its last values stay, and the loop
goes on: metrics never stop a worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.observability.logging import get_logger

if TYPE_CHECKING:
    from tta_agent_coordination.interfaces import AgentRegistry
    from tta_agent_coordination.models import AgentId
    from tta_agent_coordination.observability.deployment import DeploymentReader
    from tta_agent_coordination.observability.prometheus import PrometheusMetrics

__all__ = ["DEFAULT_INTERVAL_S", "MetricsRefresher"]

DEFAULT_INTERVAL_S = 15.0
"""Seconds between measurements (Prometheus' usual scrape interval)."""

_log = get_logger("tta_agent_coordination.observability.refresher")


class MetricsRefresher:
    """Feeds a :class:`PrometheusMetrics` with periodic measurements.

    Args:
        metrics: where the measurements go.
        reader: reads queues and shared breakers from Redis.
        queues: the queues to measure (called each round), e.g. a worker's own; None
            measures every queue in the queue index, and a queue that left the index
            stops being exported.
        breakers: also read the breakers shared through Redis.
        registry: also count the registered agents by type and liveness.
        interval_s: seconds between rounds.

    Raises:
        ConfigurationError: ``interval_s`` is not positive.
    """

    def __init__(
        self,
        metrics: PrometheusMetrics,
        reader: DeploymentReader,
        *,
        queues: Callable[[], Iterable[AgentId]] | None = None,
        breakers: bool = True,
        registry: AgentRegistry | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        if not interval_s > 0:
            raise ConfigurationError(f"interval_s must be > 0 seconds, got {interval_s}")
        self._metrics = metrics
        self._reader = reader
        self._queues = queues
        self._breakers = breakers
        self._registry = registry
        self.interval_s = interval_s
        """Seconds between rounds."""

    async def refresh(self) -> bool:
        """Measure every part once; True when every part succeeded."""
        ok = await self._part("queues", self._refresh_queues)
        if self._breakers:
            ok = await self._part("breakers", self._refresh_breakers) and ok
        registry = self._registry
        if registry is not None:
            ok = (
                await self._part("registry", lambda: self._metrics.refresh_registry(registry))
                and ok
            )
        return ok

    async def run(self) -> None:
        """Refresh every ``interval_s`` until cancelled (run it as a task you keep)."""
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval_s)

    async def _refresh_queues(self) -> None:
        if self._queues is None:
            snapshots = await self._reader.queue_snapshots(await self._reader.known_queues())
            self._metrics.update_queues(snapshots)
            return
        wanted = sorted(set(self._queues()), key=str)
        snapshots = await self._reader.queue_snapshots(wanted)
        self._metrics.update_queues(snapshots, covering=[str(q) for q in wanted])

    async def _refresh_breakers(self) -> None:
        self._metrics.set_breaker_states(await self._reader.breaker_states())

    async def _part(self, part: str, measure: Callable[[], Awaitable[None]]) -> bool:
        started = time.perf_counter()
        try:
            await measure()
        except Exception as exc:  # metrics must never stop on a Redis/registry outage
            _log.warning("metrics_refresh_failed", part=part, error=f"{type(exc).__name__}: {exc}")
            ok = False
        else:
            ok = True
        self._metrics.record_refresh(
            part, ok=ok, duration_s=time.perf_counter() - started, at=time.time()
        )
        return ok
