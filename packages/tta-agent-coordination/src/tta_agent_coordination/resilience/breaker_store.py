"""Where circuit-breaker state lives: the :class:`BreakerStore` interface and the in-process store.

A store owns the state machine's *transitions*; the
:class:`~tta_agent_coordination.resilience.CircuitBreaker` asks it to admit a call
(:meth:`BreakerStore.acquire`) and tells it how the call ended
(:meth:`BreakerStore.record`).

* :class:`InMemoryBreakerStore` keeps the state in a dict, per breaker name. Its
  operations never suspend, so they are atomic on the event loop.
* ``RedisBreakerStore`` (in :mod:`tta_agent_coordination.redis.breaker_store`) keeps it
  in Redis, so every process sees the same state.

See ``docs/resilience.md`` for how a shared store and the local fallback work together.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from tta_agent_coordination.errors import CoordinationError
from tta_agent_coordination.resilience.breaker_state import (
    Admission,
    BreakerSnapshot,
    BreakerStateMachine,
    Outcome,
)
from tta_agent_coordination.resilience.config import CircuitBreakerConfig

__all__ = ["BreakerStore", "BreakerStoreUnavailableError", "InMemoryBreakerStore"]


class BreakerStoreUnavailableError(CoordinationError):
    """A shared breaker store could not be reached, or answered too slowly.

    Breakers handle it themselves by falling back to in-process state; it only
    reaches callers who use a store directly.
    """


class BreakerStore(ABC):
    """Where breakers keep their state; implementations make each method atomic."""

    shared: bool = True
    """True when other processes see the same state (the breaker then keeps a local
    fallback for when the store cannot be reached)."""

    @abstractmethod
    async def acquire(self, name: str, config: CircuitBreakerConfig, now: float) -> Admission:
        """Admit a call, or refuse it; half-opens an open breaker whose timeout passed.

        ``now`` is the breaker's monotonic clock (a shared store uses its own clock).
        """

    @abstractmethod
    async def record(
        self,
        name: str,
        config: CircuitBreakerConfig,
        generation: int | None,
        probe: bool,
        outcome: Outcome,
        now: float,
    ) -> BreakerSnapshot:
        """Apply the outcome of a call admitted in ``generation`` (stale ones change nothing).

        ``generation=None`` applies the outcome to the current state (a call whose
        admission came from another store).
        """

    @abstractmethod
    async def reset(self, name: str, now: float) -> BreakerSnapshot:
        """Close the breaker and clear its counts."""


class InMemoryBreakerStore(BreakerStore):
    """State in this process only (the default).

    Breakers sharing one store and one name share one state; each operation is atomic
    (it never suspends).
    """

    shared = False

    def __init__(self) -> None:
        self._machines: dict[str, BreakerStateMachine] = {}

    def _machine(self, name: str) -> BreakerStateMachine:
        machine = self._machines.get(name)
        if machine is None:
            machine = self._machines[name] = BreakerStateMachine()
        return machine

    def acquire_now(self, name: str, config: CircuitBreakerConfig, now: float) -> Admission:
        """Synchronous :meth:`acquire`."""
        return self._machine(name).acquire(config, now)

    def record_now(
        self,
        name: str,
        config: CircuitBreakerConfig,
        generation: int | None,
        probe: bool,
        outcome: Outcome,
        now: float,
    ) -> BreakerSnapshot:
        """Synchronous :meth:`record`."""
        return self._machine(name).record(config, generation, probe, outcome, now)

    def reset_now(self, name: str, now: float) -> BreakerSnapshot:
        """Synchronous :meth:`reset`."""
        machine = self._machine(name)
        generation = machine.generation + 1
        fresh = self._machines[name] = BreakerStateMachine(generation=generation)
        return fresh.snapshot(now)

    def snapshot_now(self, name: str, now: float) -> BreakerSnapshot:
        """The current state of ``name`` (no transition is made)."""
        return self._machine(name).snapshot(now)

    def seed(self, name: str, snapshot: BreakerSnapshot, now: float) -> BreakerSnapshot:
        """Start ``name`` from a state seen elsewhere (used when a shared store is lost).

        An open state keeps its remaining time; a half-open one starts with no probes.
        """
        return self._machine(name).seed(snapshot, now)

    async def acquire(self, name: str, config: CircuitBreakerConfig, now: float) -> Admission:
        """See :meth:`BreakerStore.acquire`."""
        return self.acquire_now(name, config, now)

    async def record(
        self,
        name: str,
        config: CircuitBreakerConfig,
        generation: int | None,
        probe: bool,
        outcome: Outcome,
        now: float,
    ) -> BreakerSnapshot:
        """See :meth:`BreakerStore.record`."""
        return self.record_now(name, config, generation, probe, outcome, now)

    async def reset(self, name: str, now: float) -> BreakerSnapshot:
        """See :meth:`BreakerStore.reset`."""
        return self.reset_now(name, now)
