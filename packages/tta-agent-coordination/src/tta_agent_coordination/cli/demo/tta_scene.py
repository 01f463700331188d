"""The demo's TTA scene: players' turns through ``tta_agents``' pipeline and workers.

When the ``tta-agents`` package is installed, the demo opens with this scene: three
players act at once; each turn is a ``tta_agents.pipeline.TTAPipeline`` workflow (input
processor → world builder → narrative generator, one request to each agent type's
queue) answered by real ``ipa_worker`` / ``wba_worker`` / ``nga_worker`` workers around
the rule-based adapters of :mod:`.tta_adapters`. Two world-builder instances share the
``world_builder`` type queue; a watcher subscribed to events shows the pipeline's
progress events as they arrive.

The core never imports ``tta_agents`` (import-linter contract ``core-without-extensions``):
:func:`load_tta_agents` loads it with :mod:`importlib` at run time and hands back the few
names the scene uses behind :class:`TTAAgents`. Without the package the scene is skipped
and the demo says so (:data:`TTA_AGENTS_MISSING`).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tta_agent_coordination.errors import CoordinationError
from tta_agent_coordination.interfaces import MessageCoordinator
from tta_agent_coordination.models import AgentId, MessageType
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.runtime.context import MessageContext
from tta_agent_coordination.runtime.worker import AgentWorker

from .tta_adapters import (
    RULES_SOURCE,
    RuleInputProcessor,
    RuleNarrator,
    RuleWorldBuilder,
    WorldStore,
)

__all__ = [
    "TTA_AGENTS_MISSING",
    "TURNS",
    "TTAAgents",
    "TTAAgentsUnavailable",
    "TTAScene",
    "TTASceneError",
    "TTASceneResult",
    "TTATurn",
    "load_tta_agents",
]

TTA_AGENTS_MISSING = (
    "TTA scene skipped: it needs the tta-agents package (./scripts/demo installs it; "
    "elsewhere add it by its git URL or as a workspace member, see the README's Install)"
)
"""The one line the demo prints when ``tta_agents`` cannot be imported."""

TURNS: tuple[tuple[str, str], ...] = (
    ("ada", "Look around the courtyard"),
    ("bo", "Go north"),
    ("cy", "Open the rusty gate"),
)
"""The scene's players and what each one types; their turns run at once."""

WATCHER = AgentId("demo_view", "tta")
"""The agent subscribed to events that shows the pipeline's progress."""
PIPELINE_SENDER = AgentId("tta_pipeline", "demo")
"""The pipeline's own id (sender of its requests and progress events)."""

_STEPS = ("ipa", "wba", "nga")
_AGENT_TYPES = ("input_processor", "world_builder", "narrative_generator")
_WORLD_BUILDERS = ("wba-1", "wba-2")

Level = Literal["info", "ok", "warn", "error"]
Emit = Callable[[str, str, Level], None]
"""``emit(agent, text, level)``: one line of the demo's story."""


class TTAAgentsUnavailable(CoordinationError):
    """``tta_agents`` is not installed (or cannot be imported): no TTA scene."""


class TTASceneError(CoordinationError):
    """A step of the TTA scene did not happen in time."""


class StepOutcome(Protocol):
    """What the scene reads of a ``tta_agents.pipeline.StepResult``."""

    @property
    def ok(self) -> bool:
        """Whether the step's agent answered."""
        ...

    @property
    def output(self) -> dict[str, Any] | None:
        """The agent's reply payload."""
        ...

    @property
    def error(self) -> str | None:
        """Why the step failed."""
        ...


class WorkflowOutcome(Protocol):
    """What the scene reads of a ``tta_agents.pipeline.PipelineResult``."""

    @property
    def workflow_id(self) -> str:
        """The workflow's id."""
        ...

    @property
    def status(self) -> str:
        """``completed``, ``failed``, ``timed_out`` or ``cancelled``."""
        ...

    @property
    def steps(self) -> Sequence[StepOutcome]:
        """The outcome of each step that ran."""
        ...

    @property
    def error(self) -> str | None:
        """Why the workflow did not complete."""
        ...


class Pipeline(Protocol):
    """What the scene uses of a ``tta_agents.pipeline.TTAPipeline``."""

    async def run(
        self, session_id: str, player_input: str, *, context: Mapping[str, Any] | None = None
    ) -> WorkflowOutcome:
        """Run one turn."""
        ...


@dataclass(frozen=True)
class TTAAgents:
    """The names of ``tta_agents`` the scene uses (see :func:`load_tta_agents`)."""

    ipa_worker: Callable[..., AgentWorker]
    wba_worker: Callable[..., AgentWorker]
    nga_worker: Callable[..., AgentWorker]
    pipeline: Callable[..., Pipeline]
    """``TTAPipeline``: ``pipeline(coordinator, sender=..., timeouts=...)``."""
    progress_event: str
    """The ``event`` field of the pipeline's progress events."""


def load_tta_agents() -> TTAAgents:
    """Import ``tta_agents`` at run time and return what the scene needs of it.

    Raises:
        TTAAgentsUnavailable: the package is not installed, or importing it failed
            (the message says which, and how to install it).
    """
    # Looked up through the module at call time, so a test can hide the package.
    if importlib.util.find_spec("tta_agents") is None:
        raise TTAAgentsUnavailable(TTA_AGENTS_MISSING)
    try:
        workers = importlib.import_module("tta_agents.workers")
        pipeline = importlib.import_module("tta_agents.pipeline")
    except ImportError as exc:
        raise TTAAgentsUnavailable(
            f"TTA scene skipped: tta-agents is installed but could not be imported ({exc})"
        ) from exc
    return TTAAgents(
        ipa_worker=workers.ipa_worker,
        wba_worker=workers.wba_worker,
        nga_worker=workers.nga_worker,
        pipeline=pipeline.TTAPipeline,
        progress_event=str(pipeline.PIPELINE_EVENT),
    )


@dataclass
class TTATurn:
    """One player's turn and how it went."""

    player: str
    text: str
    status: str = "not run"
    narrative: str | None = None
    answered_by: dict[str, str] = field(default_factory=dict[str, str])
    """The worker that answered each step (``ipa``, ``wba``, ``nga``)."""
    sources: list[str] = field(default_factory=list[str])
    """The ``source`` of each step's answer (``rules``; ``mock_fallback`` for a fallback)."""
    steps_run: int = 0
    """Steps the workflow ran (a failed step ends it)."""
    error: str | None = None


@dataclass
class TTASceneResult:
    """What the TTA scene did."""

    turns: list[TTATurn] = field(default_factory=list[TTATurn])
    progress: list[str] = field(default_factory=list[str])
    """The progress events the watcher received (``kind`` of each)."""
    unsettled: int = 0
    """Messages left in the scene's queues after its workers stopped."""

    @property
    def expected_progress(self) -> int:
        """Events the turns published: each its start and end, and both of each step run."""
        return sum(2 + 2 * t.steps_run for t in self.turns)


@dataclass
class _Agent:
    label: str
    role: str
    worker: AgentWorker
    registry: RedisAgentRegistry | None


class TTAScene:
    """The TTA scene on the demo's coordinator (see the module docstring).

    Args:
        api: what :func:`load_tta_agents` returned.
        coordinator: the demo's queues.
        make_registry: a new registry for each worker (as separate processes have).
        emit: where the scene's story goes.
        step_timeout_s: how long the scene waits for its workers and events.
        worker_options: passed to every worker (poll and maintenance intervals...).
    """

    def __init__(
        self,
        api: TTAAgents,
        coordinator: MessageCoordinator,
        make_registry: Callable[[], RedisAgentRegistry],
        emit: Emit,
        *,
        step_timeout_s: float = 20.0,
        worker_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._api = api
        self._coordinator = coordinator
        self._make_registry = make_registry
        self._emit = emit
        self._timeout = step_timeout_s
        self._options = dict(worker_options or {})
        self.agents: list[_Agent] = []
        """The scene's workers, in the order they started (for the live view)."""
        self.result = TTASceneResult()
        self.world = WorldStore()
        """The world state both world builders share."""
        self._stopped = False

    def _add(
        self, label: str, role: str, build: Callable[[RedisAgentRegistry], AgentWorker]
    ) -> None:
        registry = self._make_registry()
        self.agents.append(_Agent(label, role, build(registry), registry))

    def _build_agents(self) -> None:
        api, coordinator, options = self._api, self._coordinator, self._options
        self._add(
            "input_processor:ipa-1",
            "TTA ipa_worker (rules)",
            lambda reg: api.ipa_worker(
                coordinator,
                reg,
                "ipa-1",
                RuleInputProcessor("input_processor:ipa-1"),
                fallback_to_mock=False,
                **options,
            ),
        )
        for instance in _WORLD_BUILDERS:
            label = f"world_builder:{instance}"
            self._add(
                label,
                "TTA wba_worker (rules)",
                lambda reg, i=instance, lb=label: api.wba_worker(
                    coordinator,
                    reg,
                    i,
                    RuleWorldBuilder(lb, self.world),
                    fallback_to_mock=False,
                    concurrency=1,
                    **options,
                ),
            )
        self._add(
            "narrative_generator:nga-1",
            "TTA nga_worker (rules)",
            lambda reg: api.nga_worker(
                coordinator,
                reg,
                "nga-1",
                RuleNarrator("narrative_generator:nga-1"),
                fallback_to_mock=False,
                **options,
            ),
        )
        watcher = AgentWorker(
            coordinator,
            None,
            WATCHER,
            subscriptions=[MessageType.EVENT],
            **options,
        )
        watcher.add_handler(self._on_event, MessageType.EVENT)
        # Unregistered: it only watches (its subscription is what makes it receive).
        self.agents.append(_Agent(str(WATCHER), "shows pipeline progress", watcher, None))

    async def _on_event(self, ctx: MessageContext[dict[str, Any]]) -> None:
        payload = ctx.payload
        if payload.get("event") != self._api.progress_event:
            return  # not the pipeline's: nothing to show
        kind = str(payload.get("kind", "?"))
        self.result.progress.append(kind)
        step = f" {payload['step']}" if "step" in payload else ""
        level: Level = "warn" if kind.endswith(("failed", "timed_out", "cancelled")) else "info"
        if kind == "workflow_completed":
            level = "ok"
        wid = str(payload.get("workflow_id", "?"))[:6]
        self._emit(
            "tta progress (event)", f"{payload.get('session_id')} {wid}: {kind}{step}", level
        )

    async def run(self) -> TTASceneResult:
        """Start the workers, play every turn at once, wait for the progress, stop them.

        Raises:
            CoordinationError: the back-end failed, or the progress events did not all
                arrive within the step timeout.
        """
        self._build_agents()
        try:
            for agent in self.agents:
                await agent.worker.start()
            self._emit(
                "demo",
                "TTA agents up: ipa-1, wba-1 and wba-2 (one world_builder queue), nga-1",
                "info",
            )
            pipeline = self._api.pipeline(self._coordinator, sender=PIPELINE_SENDER)
            self.result.turns = [TTATurn(player, text) for player, text in TURNS]
            await asyncio.gather(*(self._turn(pipeline, turn) for turn in self.result.turns))
            await self._until(
                "the pipeline's progress events",
                lambda: len(self.result.progress) >= self.result.expected_progress,
            )
        finally:
            await self.stop()
        self.result.unsettled = await self._unsettled()
        return self.result

    async def _turn(self, pipeline: Pipeline, turn: TTATurn) -> None:
        self._emit(f"player {turn.player}", f"types {turn.text!r}", "info")
        outcome = await pipeline.run(
            f"session-{turn.player}",
            turn.text,
            context={"player": turn.player, "narrative_prompt": f"{turn.player}: {turn.text}"},
        )
        turn.status = str(outcome.status)
        turn.error = outcome.error
        turn.steps_run = len(outcome.steps)
        for name, step in zip(_STEPS, outcome.steps, strict=False):
            output = step.output or {}
            turn.answered_by[name] = str(output.get("answered_by", "?"))
            turn.sources.append(str(output.get("source", "?")))
        if outcome.steps and outcome.steps[-1].ok:
            turn.narrative = str((outcome.steps[-1].output or {}).get("story", ""))
        if turn.status == "completed" and turn.narrative:
            self._emit(f"player {turn.player}", turn.narrative, "ok")
        else:
            # The first line only: a remote validation error spans many.
            reason = (turn.error or "no narrative").splitlines()[0]
            self._emit(f"player {turn.player}", f"turn {turn.status}: {reason}", "error")

    async def _until(self, what: str, check: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while not check():
            if loop.time() > deadline:
                raise TTASceneError(f"{what} did not arrive within {self._timeout:g}s")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop the scene's workers gracefully (their registrations and subscriptions go).

        Idempotent: the demo's teardown calls it again after a failure.
        """
        if self._stopped:
            return
        self._stopped = True
        for agent in self.agents:
            await agent.worker.stop()
        for agent in self.agents:
            if agent.registry is not None:
                await agent.registry.aclose()

    async def _unsettled(self) -> int:
        queues = [AgentId(t) for t in _AGENT_TYPES] + [a.worker.agent_id for a in self.agents]
        total = 0
        for agent_id in queues:
            total += (await self._coordinator.queue_stats(agent_id)).unsettled
        return total

    def checks(self) -> list[tuple[str, object, object, bool]]:
        """``(name, expected, actual, ok)`` of each expectation of the scene."""
        r = self.result
        n = len(r.turns)
        completed = sum(1 for t in r.turns if t.status == "completed" and t.narrative)
        rules = sum(1 for t in r.turns for s in t.sources if s == RULES_SOURCE)
        builders = {f"world_builder:{i}" for i in _WORLD_BUILDERS}
        by = [t.answered_by.get("wba", "?") for t in r.turns]
        return [
            ("TTA turns completed with a narrative", n, completed, n > 0 and completed == n),
            ("TTA steps answered by the rule adapters", 3 * n, rules, rules == 3 * n),
            (
                "TTA world_builder requests taken by wba-1/wba-2",
                n,
                ", ".join(sorted(b.rpartition(":")[2] for b in by)),
                len(by) == n and set(by) <= builders,
            ),
            (
                "TTA progress events seen",
                r.expected_progress,
                len(r.progress),
                len(r.progress) == r.expected_progress,
            ),
            ("TTA messages left unsettled", 0, r.unsettled, r.unsettled == 0),
        ]
