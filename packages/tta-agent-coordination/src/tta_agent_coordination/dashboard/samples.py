"""Bounded, in-memory samples of each queue for the dashboard's sparklines.

A sample is taken whenever the dashboard reads a queue (a page view or its periodic
refresh), at most once per ``min_interval_s`` per queue. Memory is bounded twice: each
queue keeps its last ``keep`` samples, and only the ``max_queues`` most recently read
queues are kept at all. Nothing is persisted: the lines show what this process saw.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["QueueSamples", "Sample", "sparkline_points"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a queue."""

    at: float
    """Monotonic seconds."""
    depth: int
    """Unsettled messages (ready, leased, delayed)."""
    added: int
    """Entries ever added to its ready streams."""
    dead: int


class QueueSamples:
    """The last ``keep`` samples of the ``max_queues`` most recently read queues."""

    def __init__(
        self,
        *,
        keep: int = 60,
        max_queues: int = 2_000,
        min_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keep = keep
        self._max_queues = max_queues
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._series: OrderedDict[str, deque[Sample]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._series)

    def record(self, queue: str, *, depth: int, added: int, dead: int) -> None:
        """Keep a sample of ``queue`` unless one was taken less than ``min_interval_s`` ago."""
        now = self._clock()
        series = self._series.get(queue)
        if series is None:
            series = deque[Sample](maxlen=self._keep)
            self._series[queue] = series
            while len(self._series) > self._max_queues:
                self._series.popitem(last=False)  # the queue read longest ago
        else:
            self._series.move_to_end(queue)
            if series and now - series[-1].at < self._min_interval_s:
                return
        series.append(Sample(now, depth, added, dead))

    def samples(self, queue: str) -> list[Sample]:
        """The samples of ``queue``, oldest first (empty when it has none)."""
        return list(self._series.get(queue, ()))

    def depths(self, queue: str) -> list[float]:
        """The depth of each sample."""
        return [float(s.depth) for s in self.samples(queue)]

    def rates(self, queue: str) -> list[float]:
        """Entries added per second between consecutive samples (0 after a reset)."""
        samples = self.samples(queue)
        return [
            max(b.added - a.added, 0) / (b.at - a.at)
            for a, b in itertools.pairwise(samples)
            if b.at > a.at
        ]


def sparkline_points(values: Sequence[float], *, width: int = 120, height: int = 24) -> str:
    """SVG ``polyline`` points drawing ``values`` left to right; empty with fewer than two.

    The line spans from 0 (bottom) to the largest value (top); all zeros draw along the
    bottom.
    """
    if len(values) < 2:
        return ""
    top = max(max(values), 1e-9)
    step = width / (len(values) - 1)
    return " ".join(
        f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(values)
    )
