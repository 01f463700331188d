"""Fault injection for the demo: a Redis outage that only this process sees.

:class:`OutageGuard` wraps a real guard (a ``RedisGuard`` with its circuit breaker).
While the outage is on, every attempt fails with ``redis.exceptions.ConnectionError``
*inside* the breaker, so the real breaker counts the failures, opens, refuses calls at
once, and later half-opens and closes exactly as it would for a real outage. Nothing is
done to the server, so the demo is safe on a Redis that other programs use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.exceptions as redis_errors

from tta_agent_coordination.resilience.guard import AgentCallGuard

__all__ = ["OutageGuard"]

T = TypeVar("T")


class OutageGuard:
    """A ``CallGuard`` that can make Redis look unreachable (see the module docstring).

    Args:
        inner: the guard whose breaker (and retry policy) see the injected failures.
    """

    def __init__(self, inner: AgentCallGuard) -> None:
        self._inner = inner
        self._active = False
        self._injected = 0

    @property
    def inner(self) -> AgentCallGuard:
        """The wrapped guard (its ``breaker`` is the one the outage trips)."""
        return self._inner

    @property
    def active(self) -> bool:
        """Whether the outage is on."""
        return self._active

    @property
    def injected(self) -> int:
        """Redis calls failed by the outage so far."""
        return self._injected

    def begin(self) -> None:
        """Start the outage: from now on every Redis call fails to connect."""
        self._active = True

    def end(self) -> None:
        """End the outage: Redis calls reach the server again."""
        self._active = False

    async def run(
        self, operation: str, fn: Callable[[], Awaitable[T]], *, retry: bool = False
    ) -> T:
        """Run ``fn`` under the wrapped guard, failing each attempt while the outage is on."""

        async def attempt() -> T:
            # Checked per attempt (inside the breaker and the retries), so an outage that
            # starts or ends during a retried call is seen the way a real one would be.
            if self._active:
                self._injected += 1
                raise redis_errors.ConnectionError(f"{operation}: Redis unreachable (injected)")
            return await fn()

        return await self._inner.run(operation, attempt, retry=retry)
