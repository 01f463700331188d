"""Call guards: a circuit breaker around each attempt, retries for repeatable operations.

:class:`RedisGuard` implements the ``CallGuard`` protocol the coordinator and registry
use around every Redis call. :class:`AgentCallGuard` and :func:`protect` give agents
the same protection for their own dependencies (an LLM API, a database).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, overload

import redis.exceptions as redis_errors

from tta_agent_coordination.resilience.breaker_store import BreakerStore
from tta_agent_coordination.resilience.circuit_breaker import CircuitBreaker
from tta_agent_coordination.resilience.config import CircuitBreakerConfig
from tta_agent_coordination.resilience.retry import RetryPolicy

__all__ = [
    "REDIS_FAILURE_ERRORS",
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
    OSError,
    asyncio.TimeoutError,
)
"""What the default Redis breaker counts as a failure: Redis is unreachable or slow.
Any other error (a ``ResponseError``, a caller's bad argument) means Redis answered."""


def redis_breaker_config(**overrides: Any) -> CircuitBreakerConfig:
    """The default config of a breaker around Redis.

    TTA's default thresholds (``docs/resilience.md``, "Configuration and defaults"),
    counting only :data:`REDIS_FAILURE_ERRORS` as failures; keyword arguments override
    fields.
    """
    fields: dict[str, Any] = {"record": REDIS_FAILURE_ERRORS, **overrides}
    return CircuitBreakerConfig(**fields)


def redis_breaker(
    name: str = "redis", *, store: BreakerStore | None = None, **overrides: Any
) -> CircuitBreaker:
    """A breaker for Redis calls with :func:`redis_breaker_config` (``overrides`` applied)."""
    return CircuitBreaker(name, redis_breaker_config(**overrides), store)


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
            only connection errors and timeouts, in-process state).
        retry: defaults to ``RetryPolicy(name="redis")``: 3 attempts, 0.05 s first
            backoff, 1 s max, 5 s deadline, transient Redis errors only.

    Retries happen only for operations run with ``retry=True`` (the coordinator passes
    it for sends, which ``message_id`` dedupe makes safe to repeat).
    """

    def __init__(
        self, breaker: CircuitBreaker | None = None, retry: RetryPolicy | None = None
    ) -> None:
        super().__init__(
            breaker if breaker is not None else redis_breaker(),
            retry if retry is not None else RetryPolicy(name="redis"),
        )


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
