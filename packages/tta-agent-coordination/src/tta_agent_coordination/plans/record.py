"""Recording runs outside Redis: the ``RunRecorder`` protocol and the runtime's use of it.

A run's state lives in Redis (``store.py``); with ``PlanRuntime(..., store=recorder)``
every state the compare-and-set script commits is also handed to a :class:`RunRecorder`
(``tta_agent_coordination_postgres.PostgresPlanRunStore`` on Postgres), so that the runs
outlive a Redis loss and their history can be queried. :class:`RunRecording` is how the
runtime uses a recorder:

* **write-behind** — after each committed change, its snapshot and events are recorded
  (:meth:`RunRecording.note`); a failure is logged, not raised: Redis stays the source of
  truth, and the next snapshot (a whole state, never a diff) catches up;
* **write-through where it matters** — before a driver sends a step request, and when a
  run has ended, the state is recorded and a failure is raised
  (:meth:`RunRecording.ensure`): a step only starts once Postgres knows every earlier
  result (so a restored run never re-runs a finished step), and ``execute`` returns (the
  driver acks the message that ended a run) only once the result is recorded.

A recorder keeps, per ``scope`` (a runtime's key prefix and instance), the newest
snapshot of each run — a write never replaces a newer version — and the events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.plans.state import RunState

__all__ = ["RunChange", "RunRecorder", "RunRecording", "run_scope"]

_MEMO_MAX = 10_000
"""Runs whose last recorded version a process remembers (to skip repeated writes)."""


def run_scope(prefix: str, instance: str) -> str:
    """The scope of a runtime's runs in a recorder: its key prefix and instance name."""
    return f"{prefix}/{instance}"


@dataclass(frozen=True, slots=True)
class RunChange:
    """One committed change of a run, as a recorder receives it.

    Attributes:
        scope: the runtime's scope (:func:`run_scope`); run ids are unique within it.
        state: the whole state after the change, with its version.
        events: the run events the change appended, as (kind, data), in order.
    """

    scope: str
    state: RunState
    events: tuple[tuple[str, dict[str, Any]], ...] = ()


@runtime_checkable
class RunRecorder(Protocol):
    """Where a runtime records its runs (see the module docstring).

    Implementations must be idempotent and keep the newest version: recording a change
    twice, or an older snapshot after a newer one, leaves the newest snapshot in place
    (events are kept once per (run, version, position)).
    """

    async def record_runs(self, changes: Sequence[RunChange]) -> None:
        """Record ``changes`` (snapshots and their events) in one transaction.

        Raises:
            StoreError: the changes could not be recorded (nothing was).
        """
        ...

    async def unfinished_runs(self, scope: str) -> list[RunState]:
        """The newest snapshot of every run of ``scope`` that has not ended, oldest first.

        Raises:
            StoreError: the runs could not be read.
        """
        ...


class RunRecording:
    """A runtime's use of a :class:`RunRecorder` (write-behind, and write-through points).

    Args:
        recorder: where runs are recorded.
        scope: the runtime's scope (:func:`run_scope`).
    """

    def __init__(self, recorder: RunRecorder, scope: str) -> None:
        self.recorder = recorder
        self.scope = scope
        self._recorded: dict[str, int] = {}
        self._log = get_logger(__name__, scope=scope)

    def _remember(self, state: RunState) -> None:
        if len(self._recorded) >= _MEMO_MAX:
            # A forgotten run is recorded once more at its next write-through point:
            # harmless (the recorder is idempotent), so a plain reset bounds the memory.
            self._recorded.clear()
        self._recorded[state.run_id] = max(state.version, self._recorded.get(state.run_id, 0))

    async def note(self, state: RunState, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Record a committed change, write-behind: a failure is logged, not raised."""
        try:
            await self.recorder.record_runs([RunChange(self.scope, state, tuple(events))])
        except Exception as exc:  # write-behind: Redis holds the change; the next one catches up
            self._recorded.pop(state.run_id, None)
            self._log.warning(
                "run_record_failed", run=state.run_id, version=state.version, error=str(exc)
            )
            return
        self._remember(state)

    async def ensure(self, state: RunState) -> None:
        """Make sure ``state`` (or a newer snapshot) is recorded; raise when it cannot be.

        Raises:
            StoreError: the recorder failed (the caller must not go on).
        """
        if self._recorded.get(state.run_id, 0) >= state.version:
            return
        await self.recorder.record_runs([RunChange(self.scope, state)])
        self._remember(state)
