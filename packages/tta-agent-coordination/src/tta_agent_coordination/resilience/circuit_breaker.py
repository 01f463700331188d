"""An asyncio circuit breaker: closed → open → half-open → closed.

* **Closed**: calls run. ``failure_threshold`` consecutive failures open the breaker (a
  success resets the count); with ``window_size`` set, so does a failure rate of at
  least ``failure_rate_threshold`` over the last ``window_size`` calls once
  ``minimum_calls`` are in the window.
* **Open**: calls are refused with :class:`~tta_agent_coordination.errors.CircuitBreakerOpenError`
  (carrying ``retry_after``) without running. After ``timeout_seconds`` the next call
  half-opens the breaker (lazily: nothing runs in the background).
* **Half-open**: at most ``half_open_max_calls`` probes run at the same time; others are
  refused. ``success_threshold`` successful probes close the breaker, any failed probe
  reopens it, and a probe that is cancelled or ignored frees its slot.

What counts as a failure is set by the config's ``record`` and ``ignore`` lists
(cancellation never does), plus calls slower than ``slow_call_threshold_s`` and calls
cut off by ``call_timeout_s``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar

import structlog

from tta_agent_coordination.errors import CircuitBreakerOpenError
from tta_agent_coordination.resilience.breaker_metrics import (
    BreakerListener,
    CircuitBreakerMetrics,
    StateTransition,
)
from tta_agent_coordination.resilience.breaker_state import BreakerSnapshot, CircuitState, Outcome
from tta_agent_coordination.resilience.breaker_store import BreakerStore, InMemoryBreakerStore
from tta_agent_coordination.resilience.cancellation import being_cancelled
from tta_agent_coordination.resilience.config import CircuitBreakerConfig

__all__ = [
    "BreakerListener",
    "CircuitBreaker",
    "CircuitBreakerMetrics",
    "CircuitState",
    "StateTransition",
]

T = TypeVar("T")
P = ParamSpec("P")

_log = structlog.get_logger("tta_agent_coordination.resilience")


@dataclass(frozen=True, slots=True)
class _Ticket:
    source: Literal["local", "shared"]
    generation: int
    probe: bool
    started: float


@dataclass(frozen=True, slots=True)
class _Frame:
    breaker: CircuitBreaker
    ticket: _Ticket
    timeout: asyncio.Timeout | None


# The ``async with`` blocks open in the current task, innermost last (one module-level
# variable: ContextVars are never freed, so none is created per breaker).
_FRAMES: ContextVar[tuple[_Frame, ...]] = ContextVar("circuit_breaker_frames", default=())


class CircuitBreaker:
    """Stops calling a dependency that keeps failing, and probes until it is back.

    Args:
        name: names the breaker in errors, logs, metrics and the shared store.
        config: thresholds and what counts as a failure (defaults: TTA's, listed in
            ``docs/resilience.md``, "Configuration and defaults").
        store: where the state lives; an :class:`InMemoryBreakerStore` of its own by
            default. With a shared store
            (:class:`~tta_agent_coordination.redis.breaker_store.RedisBreakerStore`)
            every process using the same name sees the same state; if the store cannot
            be reached the breaker carries on from in-process state, starting from the
            last state it saw, and goes back to the shared state once the store answers
            again.
        clock: monotonic clock in seconds (inject a fake one in tests).
        max_transitions_kept: how many recent transitions :attr:`metrics` lists.

    Use it as ``await breaker.call(fn)``, ``await breaker.execute(fn, *args)``, as a
    decorator (``@breaker`` on an ``async def``) or as ``async with breaker: ...``.
    """

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig | None = None,
        store: BreakerStore | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_transitions_kept: int = 100,
    ) -> None:
        self._name = name
        self._config = config if config is not None else CircuitBreakerConfig()
        self._clock = clock
        store = store if store is not None else InMemoryBreakerStore()
        self._store = store
        if isinstance(store, InMemoryBreakerStore):
            self._local = store
            self._shared: BreakerStore | None = None
        else:
            self._local = InMemoryBreakerStore()
            self._shared = store
        now = clock()
        self._snapshot: BreakerSnapshot = self._local.snapshot_now(name, now)
        self._snapshot_at = now
        self._state = self._snapshot.state
        self._degraded = False
        self._listeners: list[BreakerListener] = []
        self._background: set[asyncio.Task[None]] = set()
        self._calls = self._successes = self._failures = self._ignored = 0
        self._rejections = self._slow_calls = self._timeouts = 0
        self._transition_count = 0
        self._transitions: deque[StateTransition] = deque(maxlen=max_transitions_kept)
        self._log = _log.bind(breaker=name)

    # --- properties -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The breaker's name."""
        return self._name

    @property
    def config(self) -> CircuitBreakerConfig:
        """The breaker's configuration."""
        return self._config

    @property
    def store(self) -> BreakerStore:
        """The store the breaker keeps its state in."""
        return self._store

    @property
    def state(self) -> CircuitState:
        """The state last seen (open stays open until a call finds its timeout passed)."""
        return self._state

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted while closed."""
        return self._snapshot.failures

    @property
    def retry_after(self) -> float | None:
        """Seconds until an open breaker admits a probe, as last seen; None unless open."""
        if self._snapshot.retry_after is None:
            return None
        return max(self._snapshot.retry_after - (self._clock() - self._snapshot_at), 0.0)

    @property
    def using_fallback(self) -> bool:
        """True while a shared store is unreachable and in-process state is used."""
        return self._degraded

    @property
    def metrics(self) -> CircuitBreakerMetrics:
        """A snapshot of the breaker's counters."""
        return CircuitBreakerMetrics(
            name=self._name,
            state=self._state,
            calls=self._calls,
            successes=self._successes,
            failures=self._failures,
            ignored=self._ignored,
            rejections=self._rejections,
            slow_calls=self._slow_calls,
            timeouts=self._timeouts,
            transition_count=self._transition_count,
            transitions=tuple(self._transitions),
        )

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self._name!r}, state={self._state.value})"

    # --- listeners --------------------------------------------------------------------

    def add_listener(self, listener: BreakerListener) -> None:
        """Call ``listener(name, old_state, new_state)`` on every state change.

        A listener that raises is logged and otherwise ignored.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: BreakerListener) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    # --- calling ----------------------------------------------------------------------

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` through the breaker and return its result.

        Raises:
            CircuitBreakerOpenError: the breaker is open, or its probes are all taken.
            TimeoutError: ``call_timeout_s`` passed (counted as a failure).
            Exception: whatever ``fn`` raised.
        """
        ticket = await self._admit()
        cfg = self._config
        timeout = asyncio.timeout(cfg.call_timeout_s) if cfg.call_timeout_s else None
        try:
            if timeout is not None:
                async with timeout:
                    result = await fn()
            else:
                result = await fn()
        except asyncio.CancelledError:
            self._release_cancelled(ticket)
            raise
        except BaseException as exc:
            if being_cancelled():  # the error is the cancellation, seen through a client
                self._release_cancelled(ticket)
                raise
            await self._settle(ticket, self._classify(exc, timeout))
            raise
        await self._settle(ticket, self._success_or_slow(ticket))
        return result

    async def execute(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` through the breaker (see :meth:`call`)."""
        return await self.call(lambda: fn(*args, **kwargs))

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """Decorate an ``async def`` so that every call goes through the breaker."""

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(lambda: fn(*args, **kwargs))

        return guarded

    async def __aenter__(self) -> CircuitBreaker:
        """Admit the block (or raise ``CircuitBreakerOpenError``); its exception counts."""
        ticket = await self._admit()
        timeout: asyncio.Timeout | None = None
        if self._config.call_timeout_s:
            timeout = asyncio.timeout(self._config.call_timeout_s)
            await timeout.__aenter__()
        _FRAMES.set((*_FRAMES.get(), _Frame(self, ticket, timeout)))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Record how the block ended; never suppresses its exception."""
        frames = _FRAMES.get()
        index = max(i for i, f in enumerate(frames) if f.breaker is self)
        frame = frames[index]
        _FRAMES.set(frames[:index] + frames[index + 1 :])
        if frame.timeout is not None:
            try:
                await frame.timeout.__aexit__(exc_type, exc, tb)
            except TimeoutError as timed_out:
                await self._settle(frame.ticket, self._classify(timed_out, frame.timeout))
                raise
        if exc is None:
            await self._settle(frame.ticket, self._success_or_slow(frame.ticket))
        elif isinstance(exc, asyncio.CancelledError) or being_cancelled():
            self._release_cancelled(frame.ticket)
        else:
            await self._settle(frame.ticket, self._classify(exc, frame.timeout))

    # --- control ----------------------------------------------------------------------

    def reset(self) -> None:
        """Close the breaker and clear its failure counts, whatever its state.

        Takes effect at once in this process. With a shared store the shared state is
        reset in the background (use :meth:`areset` to wait for it); metrics counters
        are not cleared.
        """
        now = self._clock()
        snapshot = self._local.reset_now(self._name, now)
        self._degraded = False
        if self._shared is not None:
            try:
                self._spawn(self._reset_shared())
            except RuntimeError:  # no running event loop
                self._log.warning("circuit_breaker_shared_reset_skipped", reason="no event loop")
        self._observe(snapshot, now)

    async def areset(self) -> None:
        """Like :meth:`reset`, and wait until the shared store (if any) is reset too."""
        now = self._clock()
        snapshot = self._local.reset_now(self._name, now)
        self._degraded = False
        self._observe(snapshot, now)
        await self._reset_shared()

    async def aclose(self) -> None:
        """Wait for background store updates (shared resets, released probes) to finish."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # --- internals --------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            raise
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _reset_shared(self) -> None:
        if self._shared is None:
            return
        try:
            snapshot = await self._shared.reset(self._name, self._clock())
        except Exception as exc:
            self._log.warning("circuit_breaker_shared_reset_failed", error=repr(exc))
            return
        self._observe(snapshot, self._clock())

    async def _admit(self) -> _Ticket:
        now = self._clock()
        if self._shared is not None:
            try:
                admission = await self._shared.acquire(self._name, self._config, now)
            except Exception as exc:
                self._degrade(exc, now)
            else:
                self._restore()
                self._observe(admission.snapshot, now)
                if admission.allowed:
                    self._calls += 1
                    return _Ticket("shared", admission.snapshot.generation, admission.probe, now)
                self._reject(admission.snapshot)
        admission = self._local.acquire_now(self._name, self._config, now)
        self._observe(admission.snapshot, now)
        if not admission.allowed:
            self._reject(admission.snapshot)
        self._calls += 1
        return _Ticket("local", admission.snapshot.generation, admission.probe, now)

    def _reject(self, snapshot: BreakerSnapshot) -> None:
        self._rejections += 1
        raise CircuitBreakerOpenError(self._name, retry_after=snapshot.retry_after)

    def _classify(self, exc: BaseException, timeout: asyncio.Timeout | None) -> Outcome:
        if timeout is not None and timeout.expired():
            self._timeouts += 1
            return Outcome.FAILURE
        counted = self._config.counts_as_failure(exc)
        if counted is None:
            return Outcome.NEUTRAL
        return Outcome.FAILURE if counted else Outcome.SUCCESS

    def _success_or_slow(self, ticket: _Ticket) -> Outcome:
        limit = self._config.slow_call_threshold_s
        if limit is not None and self._clock() - ticket.started > limit:
            self._slow_calls += 1
            return Outcome.FAILURE
        return Outcome.SUCCESS

    def _count(self, outcome: Outcome) -> None:
        if outcome is Outcome.SUCCESS:
            self._successes += 1
        elif outcome is Outcome.FAILURE:
            self._failures += 1
        else:
            self._ignored += 1

    def _release_cancelled(self, ticket: _Ticket) -> None:
        """Free a cancelled call's probe slot without awaiting (the task is cancelled)."""
        self._count(Outcome.NEUTRAL)
        if ticket.source == "local":
            now = self._clock()
            snapshot = self._local.record_now(
                self._name, self._config, ticket.generation, ticket.probe, Outcome.NEUTRAL, now
            )
            self._observe(snapshot, now)
        elif ticket.probe:
            self._spawn(self._record_shared(ticket, Outcome.NEUTRAL))

    async def _settle(self, ticket: _Ticket, outcome: Outcome) -> None:
        self._count(outcome)
        if ticket.source == "local":
            now = self._clock()
            snapshot = self._local.record_now(
                self._name, self._config, ticket.generation, ticket.probe, outcome, now
            )
            self._observe(snapshot, now)
            return
        if not ticket.probe and self._nothing_to_record(outcome):
            return
        # A task of its own, so that cancelling the caller now cannot lose the update.
        await asyncio.shield(self._spawn(self._record_shared(ticket, outcome)))

    def _nothing_to_record(self, outcome: Outcome) -> bool:
        """True when a closed-state outcome cannot change the shared state."""
        if outcome is Outcome.NEUTRAL:
            return True
        return (
            outcome is Outcome.SUCCESS
            and self._snapshot.state is CircuitState.CLOSED
            and self._snapshot.failures == 0
            and self._config.window_size is None
        )

    async def _record_shared(self, ticket: _Ticket, outcome: Outcome) -> None:
        assert self._shared is not None
        now = self._clock()
        try:
            snapshot = await self._shared.record(
                self._name, self._config, ticket.generation, ticket.probe, outcome, now
            )
        except Exception as exc:
            self._degrade(exc, now)
            snapshot = self._local.record_now(self._name, self._config, None, False, outcome, now)
        else:
            self._restore()
        self._observe(snapshot, now)

    def _degrade(self, exc: Exception, now: float) -> None:
        if self._degraded:
            return
        self._degraded = True
        remaining = self.retry_after
        seed = BreakerSnapshot(
            self._snapshot.state, self._snapshot.generation, self._snapshot.failures, remaining
        )
        self._local.seed(self._name, seed, now)
        self._log.warning(
            "circuit_breaker_store_unreachable",
            fallback="local",
            state=self._snapshot.state.value,
            error=repr(exc),
        )

    def _restore(self) -> None:
        if self._degraded:
            self._degraded = False
            self._log.info("circuit_breaker_store_restored")

    def _observe(self, snapshot: BreakerSnapshot, now: float) -> None:
        self._snapshot = snapshot
        self._snapshot_at = now
        old, new = self._state, snapshot.state
        if old is new:
            return
        self._state = new
        self._transition_count += 1
        self._transitions.append(StateTransition(old, new, now))
        log = self._log.warning if new is CircuitState.OPEN else self._log.info
        log("circuit_breaker_state_changed", old=old.value, new=new.value)
        for listener in list(self._listeners):
            try:
                listener(self._name, old, new)
            except Exception:
                self._log.exception(
                    "circuit_breaker_listener_failed", listener=repr(listener), new=new.value
                )
