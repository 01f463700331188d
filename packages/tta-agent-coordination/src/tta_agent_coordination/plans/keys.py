"""Every Redis key of the plan runtime, in one place.

A run's keys share the Redis Cluster hash tag ``{_run:<id>}`` (agent names never start
with ``_``, so no queue's tag can clash), so that ``run_advance.lua`` changes a run's
state and appends its events in one slot::

    <prefix>:p:{_run:<id>}:state    hash    doc (the RunState JSON), version, status
    <prefix>:p:{_run:<id>}:log      stream  the run's events (MAXLEN ~events_max_len)
    <prefix>:p:{_runs}:index        zset    run_id -> creation time (ms): the run listing

Both keys of a run expire ``retention_s`` after it ends; the index is a hint, pruned of
runs whose state has expired when it is listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.plans.models import check_run_id

__all__ = ["PlanKeys", "RunKeys"]


@dataclass(frozen=True, slots=True)
class RunKeys:
    """The keys of one run (one hash tag)."""

    state: str
    log: str


@dataclass(frozen=True, slots=True)
class PlanKeys:
    """Builds the plan runtime's key names under a coordinator's prefix."""

    prefix: str

    def run(self, run_id: str) -> RunKeys:
        """The keys of ``run_id``.

        Raises:
            ConfigurationError: ``run_id`` is not a valid run id.
        """
        try:
            check_run_id(run_id)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        tag = f"{self.prefix}:p:{{_run:{run_id}}}"
        return RunKeys(state=f"{tag}:state", log=f"{tag}:log")

    @property
    def index(self) -> str:
        """The zset of every run id (a listing hint)."""
        return f"{self.prefix}:p:{{_runs}}:index"
