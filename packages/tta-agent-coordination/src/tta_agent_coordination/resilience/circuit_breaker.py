"""An asyncio circuit breaker: closed → open → half-open → closed.

Closed, calls run and failures are counted (consecutive, or a rate over a window); open,
calls are refused at once with :class:`~tta_agent_coordination.errors.CircuitBreakerOpenError`
for the open time (``timeout_seconds``, growing on openings in a row up to
``max_timeout_seconds``); then the next call half-opens it (lazily: nothing runs in the
background) and a few probes decide. With a ``health_check`` (a cheap call such as a
PING), a probe runs only once the check passes, and a failure while closed that the check
confirms opens the breaker at once (:mod:`~tta_agent_coordination.resilience.health_check`).
What counts as a failure is the config's ``record`` and ``ignore`` lists (cancellation
never does), plus slow and timed-out calls. See ``docs/resilience.md``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar

from tta_agent_coordination.errors import CircuitBreakerOpenError
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.resilience.breaker_metrics import (
    BreakerListener,
    BreakerRecorder,
    CircuitBreakerMetrics,
    StateTransition,
)
from tta_agent_coordination.resilience.breaker_state import (
    Admission,
    BreakerSnapshot,
    CircuitState,
    Outcome,
    outcome_of,
)
from tta_agent_coordination.resilience.breaker_store import BreakerStore, InMemoryBreakerStore
from tta_agent_coordination.resilience.cancellation import being_cancelled
from tta_agent_coordination.resilience.config import CircuitBreakerConfig
from tta_agent_coordination.resilience.health_check import HealthCheck, HealthCheckFn

__all__ = [
    "BreakerListener",
    "CircuitBreaker",
    "CircuitBreakerMetrics",
    "CircuitState",
    "StateTransition",
]

T = TypeVar("T")
P = ParamSpec("P")

_log = get_logger("tta_agent_coordination.resilience")


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
            default. With a shared store (``RedisBreakerStore``) every process using the
            same name sees the same state; if the store cannot be reached the breaker
            carries on from in-process state, starting from the last state it saw, and
            goes back to the shared state once the store answers again.
        clock: monotonic clock in seconds (inject a fake one in tests).
        max_transitions_kept: how many recent transitions :attr:`metrics` lists.
        health_check: a cheap call that tells whether the dependency answers (for Redis,
            a PING: :func:`~tta_agent_coordination.resilience.redis_health_check`); it
            gates half-open probes and confirms failures.

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
        health_check: HealthCheckFn | None = None,
    ) -> None:
        self._name = name
        self._config = config if config is not None else CircuitBreakerConfig()
        self._clock = clock
        self._health: HealthCheck | None = None
        if health_check is not None:
            self._health = HealthCheck(name, health_check, self._config, clock=clock)
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
        self._background: set[asyncio.Task[None]] = set()
        self._log = _log.bind(breaker=name)
        self._recorder = BreakerRecorder(name, max_transitions_kept, self._log)

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
        return self._recorder.metrics(self._state, self._health)

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self._name!r}, state={self._state.value})"

    # --- listeners --------------------------------------------------------------------

    def add_listener(self, listener: BreakerListener) -> None:
        """Call ``listener(name, old_state, new_state)`` on every state change.

        A listener that raises is logged and otherwise ignored.
        """
        self._recorder.listeners.append(listener)

    def remove_listener(self, listener: BreakerListener) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        if listener in self._recorder.listeners:
            self._recorder.listeners.remove(listener)

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
        """Wait for background work (store updates, a health check) to finish."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._health is not None:
            await self._health.wait()

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
        ticket: _Ticket | None = None
        if self._shared is not None:
            try:
                admission = await self._shared.acquire(self._name, self._config, now)
            except Exception as exc:
                self._degrade(exc, now)
            else:
                self._restore()
                ticket = self._ticket("shared", admission, now)
        if ticket is None:
            ticket = self._ticket(
                "local", self._local.acquire_now(self._name, self._config, now), now
            )
        if ticket.probe and self._health is not None:
            ticket = await self._gate(ticket)
        self._recorder.calls += 1
        return ticket

    def _ticket(
        self, source: Literal["local", "shared"], admission: Admission, now: float
    ) -> _Ticket:
        self._observe(admission.snapshot, now)
        if not admission.allowed:
            self._reject(admission.snapshot)
        return _Ticket(source, admission.snapshot.generation, admission.probe, now)

    async def _gate(self, ticket: _Ticket) -> _Ticket:
        """Refuse the probe unless the health check passes (a failed check reopens)."""
        assert self._health is not None
        try:
            outcome = await self._health.run()
        except asyncio.CancelledError:
            self._release(ticket)
            raise
        if outcome is not Outcome.SUCCESS:
            pending = self._record(ticket, outcome)
            if pending is not None:
                await pending
            self._reject(self._snapshot)
        return replace(ticket, started=self._clock())

    def _reject(self, snapshot: BreakerSnapshot) -> None:
        self._recorder.rejections += 1
        raise CircuitBreakerOpenError(self._name, retry_after=snapshot.retry_after)

    def _classify(self, exc: BaseException, timeout: asyncio.Timeout | None) -> Outcome:
        if timeout is not None and timeout.expired():
            self._recorder.timeouts += 1
            return Outcome.FAILURE
        return outcome_of(self._config, exc)

    def _success_or_slow(self, ticket: _Ticket) -> Outcome:
        limit = self._config.slow_call_threshold_s
        if limit is not None and self._clock() - ticket.started > limit:
            self._recorder.slow_calls += 1
            return Outcome.FAILURE
        return Outcome.SUCCESS

    def _release_cancelled(self, ticket: _Ticket) -> None:
        """Free a cancelled call's probe slot without awaiting (the task is cancelled)."""
        self._recorder.count(Outcome.NEUTRAL)
        self._release(ticket)

    def _release(self, ticket: _Ticket) -> None:
        """Free ``ticket``'s probe slot, if it holds one, without awaiting or counting."""
        if ticket.source == "local":
            now = self._clock()
            snapshot = self._local.record_now(
                self._name, self._config, ticket.generation, ticket.probe, Outcome.NEUTRAL, now
            )
            self._observe(snapshot, now)
        elif ticket.probe:
            self._spawn(self._record_shared(ticket, Outcome.NEUTRAL))

    async def _settle(self, ticket: _Ticket, outcome: Outcome) -> None:
        self._recorder.count(outcome)
        pending = self._record(ticket, outcome)
        if pending is not None:
            await pending
        if outcome is Outcome.FAILURE and self._health is not None and not ticket.probe:
            await self._confirm(ticket)

    async def _confirm(self, ticket: _Ticket) -> None:
        """After a failure while closed: open at once if the health check fails too."""
        if self._snapshot.state is not CircuitState.CLOSED:
            return
        source = "local" if ticket.source == "local" or self._degraded else "shared"
        current = _Ticket(source, self._snapshot.generation, False, ticket.started)
        # A task of its own, so that cancelling the caller now cannot lose the trip.
        await asyncio.shield(self._spawn(self._trip_if_down(current)))

    async def _trip_if_down(self, ticket: _Ticket) -> None:
        assert self._health is not None
        # Failures in a burst share one check: a result younger than a check's timeout.
        outcome = await self._health.run(max_age_s=self._config.health_check_timeout_s)
        if outcome is Outcome.FAILURE:
            pending = self._record(ticket, Outcome.TRIP)
            if pending is not None:
                await pending

    def _record(self, ticket: _Ticket, outcome: Outcome) -> asyncio.Future[None] | None:
        """Apply ``outcome`` to the store that admitted ``ticket`` (not counted in metrics).

        A local store applies it at once (None); for the shared store, the update to await.
        """
        if ticket.source == "local":
            now = self._clock()
            snapshot = self._local.record_now(
                self._name, self._config, ticket.generation, ticket.probe, outcome, now
            )
            self._observe(snapshot, now)
            return None
        if not ticket.probe and self._nothing_to_record(outcome):
            return None
        # A task of its own, so that cancelling the caller now cannot lose the update.
        return asyncio.shield(self._spawn(self._record_shared(ticket, outcome)))

    def _nothing_to_record(self, outcome: Outcome) -> bool:
        """True when a closed-state outcome cannot change the shared state."""
        return outcome is Outcome.NEUTRAL or (
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
        self._recorder.transition(old, new, now)
