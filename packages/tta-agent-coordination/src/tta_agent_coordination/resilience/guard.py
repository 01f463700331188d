"""Call guards: a circuit breaker around each attempt, retries for repeatable operations.

:class:`RedisGuard` implements the ``CallGuard`` protocol the coordinator and registry
use around every Redis call. :class:`AgentCallGuard` and :func:`protect` give agents
the same protection for their own dependencies (an LLM API, a database).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar, overload

import redis.exceptions as redis_errors

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.resilience.breaker_store import BreakerStore
from tta_agent_coordination.resilience.circuit_breaker import CircuitBreaker
from tta_agent_coordination.resilience.config import DEFAULT_IGNORE, CircuitBreakerConfig
from tta_agent_coordination.resilience.health_check import HealthCheckFn
from tta_agent_coordination.resilience.redis_health import redis_health_check
from tta_agent_coordination.resilience.retry import RetryPolicy

__all__ = [
    "REDIS_BREAKER_DEFAULTS",
    "REDIS_FAILURE_ERRORS",
    "REDIS_IGNORED_ERRORS",
    "AgentCallGuard",
    "RedisGuard",
    "protect",
    "redis_breaker",
    "redis_breaker_config",
]

T = TypeVar("T")
P = ParamSpec("P")

REDIS_FAILURE_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    # Not a RedisError: a Cluster with no reachable node, or a slot no node covers.
    redis_errors.RedisClusterException,
    OSError,
    asyncio.TimeoutError,
)
"""What the default Redis breaker counts as a failure: Redis is unreachable or slow.
Any other error (a ``ResponseError``, a caller's bad argument) means Redis answered."""

REDIS_IGNORED_ERRORS: tuple[type[BaseException], ...] = (
    *DEFAULT_IGNORE,
    redis_errors.MaxConnectionsError,
)
"""What the default Redis breaker never counts: caller errors, an inner breaker's refusal,
and an exhausted connection pool (``MaxConnectionsError``, a ``ConnectionError``): that is
back-pressure in this process, not a sign that Redis is down."""

REDIS_BREAKER_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "timeout_seconds": 0.5,
        "timeout_multiplier": 2.0,
        "max_timeout_seconds": 5.0,
        "health_check_timeout_s": 1.0,
    }
)
"""Where the Redis breaker departs from :class:`CircuitBreakerConfig`'s defaults: open
0.5 s, twice as long on each opening in a row, at most 5 s (so it recovers within about
5 s of Redis answering again), and a 1 s bound on its PING health check. See
``docs/resilience.md``, "The breaker around Redis", for the trade-off."""


def redis_breaker_config(**overrides: Any) -> CircuitBreakerConfig:
    """The default config of a breaker around Redis.

    TTA's thresholds with the open times of :data:`REDIS_BREAKER_DEFAULTS`, counting only
    :data:`REDIS_FAILURE_ERRORS` as failures and never :data:`REDIS_IGNORED_ERRORS`;
    keyword arguments override fields. A ``timeout_seconds`` above the default cap, given
    without ``max_timeout_seconds``, raises the cap to it (a fixed open time, as before
    the growing one), rather than being refused as inconsistent.
    """
    fields: dict[str, Any] = {
        **REDIS_BREAKER_DEFAULTS,
        "record": REDIS_FAILURE_ERRORS,
        "ignore": REDIS_IGNORED_ERRORS,
        **overrides,
    }
    opened = fields["timeout_seconds"]
    cap = fields["max_timeout_seconds"]
    default_cap = "max_timeout_seconds" not in overrides
    if default_cap and isinstance(opened, int | float) and isinstance(cap, int | float):
        fields["max_timeout_seconds"] = float(max(cap, opened))
    return CircuitBreakerConfig(**fields)


def redis_breaker(
    name: str = "redis",
    *,
    store: BreakerStore | None = None,
    health_check: HealthCheckFn | None = None,
    **overrides: Any,
) -> CircuitBreaker:
    """A breaker for Redis calls with :func:`redis_breaker_config` (``overrides`` applied).

    Pass ``health_check=redis_health_check(client)`` (as :class:`RedisGuard` does when
    given its client) so that probes PING first and failures are confirmed by a PING.
    """
    return CircuitBreaker(name, redis_breaker_config(**overrides), store, health_check=health_check)


class AgentCallGuard:
    """A breaker around each attempt, and a retry policy for operations safe to repeat.

    ``run(operation, fn, retry=True)`` retries ``fn`` with the policy; each attempt goes
    through the breaker, and an open breaker (``CircuitBreakerOpenError``) is raised at
    once, never retried. Implements the ``CallGuard`` protocol.

    Args:
        breaker: the breaker; every attempt is one call through it.
        retry: the retry policy used when ``run(..., retry=True)``; None never retries.
    """

    def __init__(self, breaker: CircuitBreaker, retry: RetryPolicy | None = None) -> None:
        self._breaker = breaker
        self._retry = retry

    @property
    def breaker(self) -> CircuitBreaker:
        """The guard's circuit breaker."""
        return self._breaker

    @property
    def retry_policy(self) -> RetryPolicy | None:
        """The guard's retry policy (None: never retries)."""
        return self._retry

    async def run(
        self, operation: str, fn: Callable[[], Awaitable[T]], *, retry: bool = False
    ) -> T:
        """Run ``fn`` under the breaker; with ``retry=True``, retry transient failures.

        Pass ``retry=True`` only when repeating ``fn`` after an ambiguous failure is
        harmless (the first attempt may have been applied).

        Raises:
            CircuitBreakerOpenError: the breaker is open (no attempt was made).
        """
        if not retry or self._retry is None:
            return await self._breaker.call(fn)
        return await self._retry.call(lambda: self._breaker.call(fn), operation=operation)

    def protect(
        self, fn: Callable[P, Awaitable[T]], *, retry: bool = True, operation: str | None = None
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        """``fn`` with every call run through :meth:`run`."""
        op = operation or getattr(fn, "__qualname__", repr(fn))

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.run(op, lambda: fn(*args, **kwargs), retry=retry)

        return guarded


class RedisGuard(AgentCallGuard):
    """The guard around the library's Redis calls (implements ``CallGuard``).

    Args:
        breaker: defaults to :func:`redis_breaker` (a breaker named ``redis`` counting
            only connection errors and timeouts, in-process state), with
            :func:`redis_health_check` of ``client`` when one is given.
        retry: defaults to ``RetryPolicy(name="redis")``: 3 attempts, 0.05 s first
            backoff, 1 s max, 5 s deadline from the first attempt, transient Redis
            errors only.
        client: the Redis client the guarded calls use, for the default breaker's
            health check (ignored when ``breaker`` is given).

    Retries happen only for operations run with ``retry=True`` (the coordinator passes
    it for sends, which ``message_id`` dedupe makes safe to repeat).
    """

    def __init__(
        self,
        breaker: CircuitBreaker | None = None,
        retry: RetryPolicy | None = None,
        *,
        client: RedisClient | None = None,
    ) -> None:
        if breaker is None:
            check = redis_health_check(client) if client is not None else None
            breaker = redis_breaker(health_check=check)
        super().__init__(breaker, retry if retry is not None else RetryPolicy(name="redis"))


@overload
def protect(
    fn: Callable[P, Awaitable[T]],
    *,
    breaker: CircuitBreaker,
    retry: RetryPolicy | None = None,
) -> Callable[P, Coroutine[Any, Any, T]]: ...


@overload
def protect(
    fn: None = None,
    *,
    breaker: CircuitBreaker,
    retry: RetryPolicy | None = None,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]: ...


def protect(
    fn: Callable[P, Awaitable[T]] | None = None,
    *,
    breaker: CircuitBreaker,
    retry: RetryPolicy | None = None,
) -> (
    Callable[P, Coroutine[Any, Any, T]]
    | Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]
):
    """Protect an agent's own async call with a breaker and (optionally) retries.

    ``protect(fn, breaker=b, retry=r)`` returns the protected function;
    ``@protect(breaker=b, retry=r)`` decorates. Passing ``retry`` states that ``fn`` is
    safe to repeat; give the policy ``retry_on=`` the errors of your client library.
    """
    guard = AgentCallGuard(breaker, retry)

    def decorate(target: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        return guard.protect(target, retry=retry is not None)

    if fn is None:
        return decorate
    return decorate(fn)
