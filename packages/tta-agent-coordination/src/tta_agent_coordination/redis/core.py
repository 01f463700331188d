"""What every part of one ``RedisMessageCoordinator`` shares, and its guarded Redis calls.

The coordinator is a façade over parts with one job each (sending, receiving, settling,
recovery, dead letters, subscriptions, replies); they all hold the same
:class:`CoordinatorCore`, so a setting changed by ``configure`` is seen by every part
at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from redis.exceptions import RedisClusterException, RedisError

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import CircuitBreakerOpenError, CoordinatorUnavailableError
from tta_agent_coordination.interfaces import CallGuard
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.observability.metrics import MessageMetrics, expired_counter
from tta_agent_coordination.observability.tracing import Tracing
from tta_agent_coordination.redis.config import CoordinatorConfig
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.lifecycle import LifecycleRecorder
from tta_agent_coordination.redis.lua import ScriptCall, ScriptSet
from tta_agent_coordination.redis.stream_waiter import StreamWaiter
from tta_agent_coordination.resilience.cancellation import CancellationWatch

__all__ = ["UNAVAILABLE_ERRORS", "CoordinatorCore"]

T = TypeVar("T")

UNAVAILABLE_ERRORS = (
    RedisError,
    RedisClusterException,
    OSError,
    asyncio.TimeoutError,
    CircuitBreakerOpenError,
)
"""What a guarded call raises when Redis is unreachable or its breaker is open (a send
reports them in its results, a background subscription write logs them).
"""


class CoordinatorCore:
    """The client, key space, settings, guard, metrics, scripts, lifecycle, tracing, waiter.

    Args:
        redis: the asyncio client (not owned: never closed here).
        keys: the key space.
        config: the validated settings; replaced as a whole by ``configure``.
        guard: wraps every Redis call (circuit breaker, retries of repeatable calls).
        metrics: receives counters and gauges.
        lifecycle: records every lifecycle change (a null recorder without a store).
        tracing: the coordinator's OpenTelemetry spans (the global provider's by default).

    ``waiter`` is the one :class:`StreamWaiter` every blocking receive of the coordinator
    waits through (closed by the coordinator's ``aclose``).
    """

    __slots__ = (
        "config",
        "guard",
        "inc_expired",
        "keys",
        "lifecycle",
        "log",
        "metrics",
        "redis",
        "scripts",
        "tracing",
        "waiter",
    )

    def __init__(
        self,
        redis: RedisClient,
        keys: KeySpace,
        config: CoordinatorConfig,
        *,
        guard: CallGuard,
        metrics: MessageMetrics,
        lifecycle: LifecycleRecorder,
        tracing: Tracing | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.config = config
        self.guard = guard
        self.metrics = metrics
        self.inc_expired = expired_counter(metrics)
        """``metrics.inc_expired``, or ``inc_permanent`` for metrics written before it."""
        self.lifecycle = lifecycle
        self.tracing = tracing if tracing is not None else Tracing()
        """The coordinator's spans (``observability.tracing``; the global provider's)."""
        self.scripts = ScriptSet(redis)
        self.log = get_logger("tta_agent_coordination.redis.coordinator", prefix=keys.prefix)
        self.waiter = StreamWaiter(redis, run=self.call)

    async def call(
        self, operation: str, fn: Callable[[], Awaitable[T]], *, retry: bool = False
    ) -> T:
        """Run a Redis call under the guard; Redis failures become typed errors.

        Raises:
            CoordinatorUnavailableError: Redis failed (or timed out).
            CircuitBreakerOpenError: the guard's breaker is open.
        """
        watch = CancellationWatch()
        try:
            result = await self.guard.run(operation, fn, retry=retry)
        # RedisClusterException is not a RedisError: no reachable node, a slot uncovered.
        except (TimeoutError, RedisError, RedisClusterException, OSError) as exc:
            watch.reraise(exc)
            raise CoordinatorUnavailableError(f"{operation} failed: Redis error: {exc}") from exc
        watch.reraise()
        return result

    def run(
        self, operation: str, call: ScriptCall[T], *, retry: bool = False
    ) -> Coroutine[Any, Any, T]:
        """Run one prepared script call under the guard (see :meth:`call`); its outcome.

        A plain function returning :meth:`call`'s coroutine: one frame less per call.
        """
        return self.call(operation, lambda: self.scripts.call(call), retry=retry)
