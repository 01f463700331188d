"""Retry policies on tenacity: exponential backoff with jitter, transient errors only.

Only retry operations that are safe to repeat: an attempt that failed with a connection
error may still have been applied by the server. The library's sends are (a repeated
``message_id`` is deduplicated); receive, ack and nack are not retried blindly.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import redis.exceptions as redis_errors
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)
from tenacity.stop import stop_base

from tta_agent_coordination.errors import CircuitBreakerOpenError, ConfigurationError
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.resilience.cancellation import being_cancelled

__all__ = [
    "NEVER_RETRY_ERRORS",
    "TRANSIENT_ERRORS",
    "RetryPolicy",
    "is_transient",
]

T = TypeVar("T")
P = ParamSpec("P")

_log = get_logger("tta_agent_coordination.resilience")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    OSError,
    asyncio.TimeoutError,
)
"""Errors a retry may cure: the connection dropped, the server is loading or failing
over, a call timed out. Not ``ResponseError`` in general (a wrong command or type
fails the same way every time)."""

NEVER_RETRY_ERRORS: tuple[type[BaseException], ...] = (
    CircuitBreakerOpenError,
    redis_errors.AuthenticationError,
    redis_errors.AuthorizationError,
)
"""Errors never retried, even when they match the retry list: an open breaker (the
point is to stop calling) and bad credentials (subclasses of redis ``ConnectionError``)."""


class _StopBeforeDeadline(stop_base):
    """Stop when the next attempt could not start before ``deadline`` (monotonic seconds).

    tenacity's ``stop_before_delay`` measures from when its loop began; the policy's fast
    path runs the first attempt before that, so the deadline is fixed here, before the
    first attempt: a first attempt that itself outlasted the deadline (a read that hung
    for the whole socket timeout) is never followed by another.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        ended = retry_state.outcome_timestamp
        now = ended if ended is not None else time.monotonic()
        return now + retry_state.upcoming_sleep >= self.deadline


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` is one of :data:`TRANSIENT_ERRORS` and not a never-retry error."""
    return isinstance(exc, TRANSIENT_ERRORS) and not isinstance(exc, NEVER_RETRY_ERRORS)


class RetryPolicy:
    """Retries an async operation on transient errors, with exponential backoff and jitter.

    The wait before retry *n* is ``min(initial_s * exp_base ** (n - 1) + U(0, jitter_s),
    max_s)``. Retrying stops after ``attempts`` attempts, or when the next attempt could
    not start before ``deadline_s`` (measured from the start of the first attempt, so a
    first attempt slower than the deadline is never repeated; an attempt in progress is
    never cut short). The last error is re-raised unchanged.

    Args:
        attempts: total attempts including the first (None: no limit; then set a
            deadline).
        deadline_s: no new attempt starts after this many seconds (None: no deadline).
        initial_s: the first backoff.
        max_s: the largest backoff.
        exp_base: backoff growth factor.
        jitter_s: random extra wait, up to this (defaults to ``initial_s``).
        retry_on: the error types retried (``CircuitBreakerOpenError`` and auth errors
            never are).
        name: names the policy in logs.
        sleep: the async sleep used between attempts (inject one in tests).
    """

    def __init__(
        self,
        *,
        attempts: int | None = 3,
        deadline_s: float | None = 5.0,
        initial_s: float = 0.05,
        max_s: float = 1.0,
        exp_base: float = 2.0,
        jitter_s: float | None = None,
        retry_on: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
        name: str = "retry",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        problems: list[str] = []
        if attempts is None and deadline_s is None:
            problems.append("set attempts, deadline_s or both (otherwise it retries forever)")
        if attempts is not None and attempts < 1:
            problems.append(f"attempts must be >= 1, got {attempts}")
        if deadline_s is not None and not deadline_s > 0:
            problems.append(f"deadline_s must be > 0, got {deadline_s}")
        if initial_s < 0 or max_s < initial_s:
            problems.append(f"need 0 <= initial_s <= max_s, got {initial_s}, {max_s}")
        if exp_base < 1:
            problems.append(f"exp_base must be >= 1, got {exp_base}")
        if jitter_s is not None and jitter_s < 0:
            problems.append(f"jitter_s must be >= 0, got {jitter_s}")
        if problems:
            raise ConfigurationError("invalid retry policy: " + "; ".join(problems))
        self.attempts = attempts
        self.deadline_s = deadline_s
        self.initial_s = initial_s
        self.max_s = max_s
        self.exp_base = exp_base
        self.jitter_s = initial_s if jitter_s is None else jitter_s
        self.retry_on = retry_on
        self.name = name
        self._sleep = sleep

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(name={self.name!r}, attempts={self.attempts}, "
            f"deadline_s={self.deadline_s}, initial_s={self.initial_s}, max_s={self.max_s})"
        )

    def should_retry(self, exc: BaseException) -> bool:
        """True if this policy retries after ``exc``."""
        if being_cancelled():
            return False
        return isinstance(exc, self.retry_on) and not isinstance(exc, NEVER_RETRY_ERRORS)

    def backoff(self, state: RetryCallState) -> float:
        """The wait before the next attempt (exponential, plus jitter, capped)."""
        exponent = state.attempt_number - 1
        try:
            base = self.initial_s * self.exp_base**exponent
        except OverflowError:
            base = self.max_s
        return min(base + random.uniform(0, self.jitter_s), self.max_s)

    def _stop(self, started: float) -> stop_base:
        stops: list[stop_base] = []
        if self.attempts is not None:
            stops.append(stop_after_attempt(self.attempts))
        if self.deadline_s is not None:
            stops.append(_StopBeforeDeadline(started + self.deadline_s))
        stop = stops[0]
        for extra in stops[1:]:
            stop = stop | extra
        return stop

    async def call(self, fn: Callable[[], Awaitable[T]], *, operation: str = "call") -> T:
        """Await ``fn()``, retrying on transient errors; ``operation`` names it in logs."""
        # Fast path: the first attempt runs without tenacity, whose per-call set-up costs
        # more than a Redis round trip. Only a retryable failure enters the retry loop,
        # whose first "attempt" re-raises that failure, so attempt counts are unchanged.
        started = time.monotonic()
        try:
            return await fn()
        except Exception as exc:
            if not self.should_retry(exc):
                raise
            first_failure: list[Exception] = [exc]

        async def attempt() -> T:
            if first_failure:
                raise first_failure.pop()
            return await fn()

        return await self._retry(attempt, operation, started)

    async def _retry(self, fn: Callable[[], Awaitable[T]], operation: str, started: float) -> T:
        def log_retry(state: RetryCallState) -> None:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            _log.warning(
                "retrying",
                policy=self.name,
                operation=operation,
                attempt=state.attempt_number,
                sleep_s=round(state.upcoming_sleep, 4),
                error=repr(error),
            )

        retrying = AsyncRetrying(
            stop=self._stop(started),
            wait=self.backoff,
            retry=retry_if_exception(self.should_retry),
            before_sleep=log_retry,
            sleep=self._sleep,
            reraise=True,
        )
        attempt_number = 0  # pragma: no mutate (set by the first attempt before any raise)
        try:
            async for attempt in retrying:
                with attempt:
                    attempt_number = attempt.retry_state.attempt_number
                    return await fn()
        except Exception as exc:
            if attempt_number > 1:
                _log.warning(
                    "retry_gave_up",
                    policy=self.name,
                    operation=operation,
                    attempts=attempt_number,
                    error=repr(exc),
                )
            raise
        raise AssertionError(
            "unreachable: tenacity neither returned nor raised"  # pragma: no mutate
        )  # pragma: no cover

    def wrap(
        self, fn: Callable[P, Awaitable[T]], *, operation: str | None = None
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        """``fn`` with this policy applied to every call (usable as a decorator)."""
        op = operation or getattr(fn, "__qualname__", repr(fn))

        @functools.wraps(fn)
        async def retried(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(lambda: fn(*args, **kwargs), operation=op)

        return retried
