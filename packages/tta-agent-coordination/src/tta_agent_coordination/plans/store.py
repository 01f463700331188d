"""The durable state of runs in Redis: create, load, compare-and-set, list, read events.

A run is one hash (its :class:`~tta_agent_coordination.plans.machine.RunState` as JSON,
its version and status) and one event stream, under one hash tag (``keys.py``). Every
change is ``run_advance.lua``: the new state and its events are written together, and
only when the version is still the one the change was computed from, so that two
drivers (or a late reply racing a timeout) can never both apply a transition.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from redis.commands.core import AsyncScript
from redis.exceptions import RedisClusterException, RedisError

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import CoordinatorUnavailableError
from tta_agent_coordination.plans.errors import RunNotFoundError
from tta_agent_coordination.plans.keys import PlanKeys
from tta_agent_coordination.plans.machine import RunState
from tta_agent_coordination.plans.models import RunEvent, RunStatus
from tta_agent_coordination.plans.record import RunRecording
from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.lua import package_script

__all__ = ["RunStore", "RunSummary"]

T = TypeVar("T")


def _script(name: str) -> str:
    return package_script("tta_agent_coordination.plans", name)


def _event_args(events: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    args: list[str] = []
    for kind, data in events:
        args += [kind, json.dumps(data, separators=(",", ":"), sort_keys=True)]
    return args


class RunSummary(tuple[str, RunStatus, int]):
    """(run id, status, creation time in ms) of a listed run."""

    __slots__ = ()

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self[0]

    @property
    def status(self) -> RunStatus:
        """Its status when listed."""
        return self[1]

    @property
    def created_ms(self) -> int:
        """When it was created (ms since the epoch, this host's clock)."""
        return self[2]


class RunStore:
    """Runs in Redis under a coordinator's key prefix (see the module docstring).

    Args:
        redis: the client (the coordinator's).
        prefix: the key prefix (the coordinator's ``keys.prefix``).
        events_max_len: events kept per run (approximately).
        retention_s: how long a finished run stays.
        recording: where committed changes are also recorded (write-behind), if anywhere.
    """

    def __init__(
        self,
        redis: RedisClient,
        prefix: str,
        *,
        events_max_len: int,
        retention_s: float,
        recording: RunRecording | None = None,
    ) -> None:
        self._redis = redis
        self.recording = recording
        self.keys = PlanKeys(prefix)
        self._max_len = events_max_len
        self._retention_ms = max(1, int(retention_s * 1000))
        self._create: AsyncScript = redis.register_script(_script("run_create"))
        self._advance: AsyncScript = redis.register_script(_script("run_advance"))
        self._restore: AsyncScript = redis.register_script(_script("run_restore"))

    async def _call(self, operation: str, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except (TimeoutError, RedisError, RedisClusterException, OSError) as exc:
            raise CoordinatorUnavailableError(f"{operation} failed: Redis error: {exc}") from exc

    async def create(
        self, state: RunState, events: Sequence[tuple[str, dict[str, Any]]], created_ms: int
    ) -> bool:
        """Store a new run with its first events; False (changing nothing) when it exists.

        Raises:
            CoordinatorUnavailableError: Redis failed.
        """
        keys = self.keys.run(state.run_id)
        ttl = self._retention_ms if state.status.terminal else 0
        argv = [_dump(state), state.status.value, self._max_len, ttl, *_event_args(events)]
        raw = await self._call(
            "run create", lambda: self._create(keys=[keys.state, keys.log], args=argv)
        )
        # The index is another slot: written after, as a hint (re-adding is harmless).
        await self._call(
            "run index",
            lambda: self._redis.zadd(self.keys.index, {state.run_id: created_ms}, nx=True),
        )
        created = int(raw[0]) == 1
        if created and self.recording is not None:
            await self.recording.note(state.model_copy(update={"version": 1}), events)
        return created

    async def load(self, run_id: str) -> RunState | None:
        """The run's state with its current version; None when it does not exist."""
        keys = self.keys.run(run_id)
        doc, version = await self._call(
            "run load", lambda: self._redis.hmget(keys.state, ["doc", "version"])
        )
        if doc is None or version is None:
            return None
        state = RunState.model_validate_json(text(doc))
        return state.model_copy(update={"version": int(text(version))})

    async def require(self, run_id: str) -> RunState:
        """The run's state.

        Raises:
            RunNotFoundError: no such run.
        """
        state = await self.load(run_id)
        if state is None:
            raise RunNotFoundError(run_id)
        return state

    async def apply(
        self, before: RunState, after: RunState, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> bool:
        """Write ``after`` if the stored version is still ``before.version``.

        Returns False when another change came first (reload and decide again).

        Raises:
            RunNotFoundError: the run no longer exists.
            CoordinatorUnavailableError: Redis failed.
        """
        keys = self.keys.run(before.run_id)
        ttl = self._retention_ms if after.status.terminal else 0
        stored = after.model_copy(update={"version": before.version + 1})
        argv = [
            before.version,
            _dump(stored),
            after.status.value,
            self._max_len,
            ttl,
            *_event_args(events),
        ]
        raw = await self._call(
            "run advance", lambda: self._advance(keys=[keys.state, keys.log], args=argv)
        )
        outcome = int(raw[0])
        if outcome == -1:
            raise RunNotFoundError(before.run_id)
        if outcome == 1 and self.recording is not None:
            await self.recording.note(stored, events)
        return outcome == 1

    async def ensure_recorded(self, state: RunState) -> None:
        """Write-through: make sure the recorder holds ``state`` (no-op without one).

        Raises:
            StoreError: the recorder failed.
        """
        if self.recording is not None:
            await self.recording.ensure(state)

    async def restore(self, state: RunState, created_ms: int) -> tuple[bool, int]:
        """Put a recorded run back (after a Redis loss) unless Redis holds it already.

        Writes the state with its recorded version and a ``restored`` event, atomically,
        only when the run's state key does not exist. Returns (written, the version Redis
        holds now).

        Raises:
            CoordinatorUnavailableError: Redis failed.
        """
        keys = self.keys.run(state.run_id)
        data = {"version": state.version, "status": state.status.value}
        argv = [
            _dump(state),
            state.status.value,
            state.version,
            self._max_len,
            "restored",
            json.dumps(data, separators=(",", ":"), sort_keys=True),
        ]
        raw = await self._call(
            "run restore", lambda: self._restore(keys=[keys.state, keys.log], args=argv)
        )
        await self._call(
            "run index",
            lambda: self._redis.zadd(self.keys.index, {state.run_id: created_ms}, nx=True),
        )
        return int(raw[0]) == 1, int(raw[1])

    async def list_runs(self, limit: int = 50) -> list[RunSummary]:
        """The newest ``limit`` runs with their status; expired ones leave the index."""
        raw = cast(
            "list[tuple[Any, float]]",
            await self._call(
                "run list",
                lambda: self._redis.zrevrange(
                    self.keys.index, 0, max(0, limit - 1), withscores=True
                ),
            ),
        )
        runs: list[RunSummary] = []
        gone: list[str] = []
        for member, score in raw:
            run_id = text(member)
            status = await self._call(
                "run status", lambda r=run_id: self._redis.hget(self.keys.run(r).state, "status")
            )
            if status is None:
                gone.append(run_id)
                continue
            runs.append(RunSummary((run_id, RunStatus(text(status)), int(score))))
        if gone:
            await self._call("run index prune", lambda: self._redis.zrem(self.keys.index, *gone))
        return runs

    async def read_events(self, run_id: str, after: str = "0", count: int = 100) -> list[RunEvent]:
        """Events of ``run_id`` after the entry id ``after`` (``"0"``: from the start)."""
        log = self.keys.run(run_id).log
        start = "-" if after in ("0", "0-0") else f"({after}"
        raw = cast(
            "list[tuple[Any, dict[Any, Any]]]",
            await self._call("run events", lambda: self._redis.xrange(log, min=start, count=count)),
        )
        events: list[RunEvent] = []
        for entry_id, fields in raw:
            decoded = {text(k): text(v) for k, v in fields.items()}
            events.append(
                RunEvent(
                    id=text(entry_id),
                    kind=decoded.get("kind", "unknown"),
                    version=int(decoded.get("v", "0")),
                    data=json.loads(decoded.get("data", "{}")),
                )
            )
        return events


def _dump(state: RunState) -> str:
    return state.model_dump_json()
