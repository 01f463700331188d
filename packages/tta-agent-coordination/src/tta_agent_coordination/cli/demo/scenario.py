"""The demo's script: TTA's agents at work, with every failure the library handles.

Agents (each worker with its own registry, as separate processes would have):

* ``input_processor`` — the player's side: sends each player command as a request to a
  ``world_builder`` instance and waits for the reply;
* ``world_builder:w1`` and ``world_builder:w2`` — workers that build the world for a
  command, publish a ``world_changed`` event and reply;
* ``narrative_generator:n1`` — a worker subscribed to events, narrating each change.

The script, in four acts (five with ``tta_agents`` installed):

0. **TTA** — only when the ``tta-agents`` package is importable (:mod:`.tta_scene`):
   three players' turns run at once through ``tta_agents``' ``TTAPipeline`` (input
   processor → world builder → narrative generator) to real ``ipa_worker`` /
   ``wba_worker`` / ``nga_worker`` workers with rule-based adapters; two world-builder
   instances share the type queue and the pipeline's progress events are shown as they
   arrive. Its workers stop before act 1 (whose world builders use the same type queue).
   Then the **plan** scene (:mod:`.plan_scene`, in act 0 too): a task planned by rules
   into steps on agents; a step fails once and is retried, a reflection replans once.
   Then the **meeting** scene (:mod:`.meeting_scene`, in act 0 too): a host and three
   agents take turns; a silent agent's turn times out on the server clock.
1. **Play** — five commands at once, four to any ``world_builder`` (the type queue w1
   and w2 share: whichever instance is free takes each) and one to ``w2`` itself.
   ``open the gate`` fails transiently on its first delivery and is retried after a
   backoff that is visibly scheduled in the type queue's delayed set; ``summon a
   dragon`` is poison (``PermanentError``): it is dead-lettered and its requester gets
   ``RemoteHandlerError``.
2. **Crash** — ``w1`` freezes in the middle of ``cross the bridge`` and stops sending
   heartbeats. Once its registration expires a replacement ``w1`` registers; the
   registry hands the frozen instance's leased message back to the queue and the
   replacement finishes it. The frozen instance then wakes up, finds its registration
   taken, and stops without touching the work.
3. **Outage** — Redis becomes unreachable (injected, see :mod:`.outage`): the circuit
   breaker opens, the requester's attempts fail fast, and once Redis is back the breaker
   half-opens, its probes succeed and it closes; ``ring the bell`` then goes through.
4. **Check** — every count is compared with what must have happened
   (:attr:`DemoResult.checks`).

:func:`run_demo` is plain library code: no printing; progress goes to an
``on_event`` callback and :meth:`DemoScenario.snapshot` feeds a live view.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import (
    CoordinationError,
    PermanentError,
    RemoteHandlerError,
    RequestNotDeliveredError,
)
from tta_agent_coordination.models import AgentId, DeadLetter, MessageType
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.resilience.breaker_state import CircuitState
from tta_agent_coordination.resilience.circuit_breaker import CircuitBreaker
from tta_agent_coordination.resilience.guard import RedisGuard, redis_breaker
from tta_agent_coordination.runtime.context import MessageContext
from tta_agent_coordination.runtime.worker import AgentWorker, WorkerState, WorkerStats

from .meeting_scene import MeetingScene, MeetingSceneResult
from .outage import OutageGuard
from .plan_scene import PlanScene, PlanSceneResult
from .tta_scene import TTAAgentsUnavailable, TTAScene, TTASceneResult, load_tta_agents

__all__ = [
    "COMMANDS",
    "DOOMED",
    "FLAKY",
    "POISON",
    "AgentRow",
    "Check",
    "DemoEvent",
    "DemoResult",
    "DemoScenario",
    "DemoSettings",
    "DemoSnapshot",
    "EventLevel",
    "run_demo",
]

INPUT = AgentId("input_processor", "ip1")
W1 = AgentId("world_builder", "w1")
W2 = AgentId("world_builder", "w2")
ANY_BUILDER = AgentId("world_builder")
"""Any live ``world_builder`` instance: the type queue that w1 and w2 share."""
NARRATOR = AgentId("narrative_generator", "n1")

FLAKY = "open the gate"
"""Fails transiently on its first delivery, then succeeds."""
POISON = "summon a dragon"
"""Fails permanently: dead-lettered, its requester gets ``RemoteHandlerError``."""
DOOMED = "cross the bridge"
"""The command ``w1`` freezes on; its replacement finishes it."""
BELL = "ring the bell"
"""Sent while Redis is down; goes through once the breaker has closed."""

_PLAY: tuple[tuple[str, AgentId], ...] = (
    ("look around", ANY_BUILDER),
    (FLAKY, ANY_BUILDER),
    ("light a torch", ANY_BUILDER),
    (POISON, W2),
    ("go north", ANY_BUILDER),
)
COMMANDS: tuple[tuple[str, AgentId], ...] = (*_PLAY, (DOOMED, W1), (BELL, W2))
"""Every player command and where it goes: any ``world_builder`` (the type queue shared by
w1 and w2, whichever is free takes it) or one instance."""

EventLevel = Literal["info", "ok", "warn", "error"]
"""How an event is shown: plain, a success, a handled failure, a failed check."""


@dataclass(frozen=True)
class DemoSettings:
    """Timings of the demo (the defaults finish in about ten seconds)."""

    pause_s: float = 0.5
    """Pause between acts, so that a person can follow the live view (0 in tests)."""
    step_timeout_s: float = 20.0
    """Longest wait for any one step; past it the demo fails with the step named."""
    heartbeat_ttl_s: float = 10.0
    """Registration TTL of the healthy agents (longer than the outage)."""
    crash_ttl_s: float = 1.5
    """Registration TTL of the instance that freezes: how soon it is declared dead."""
    breaker_failures: int = 3
    """Consecutive Redis failures that open the breaker."""
    breaker_timeout_s: float = 1.0
    """How long the breaker stays open before it lets probes through."""
    outage_after_open_s: float = 1.5
    """How long Redis stays down once the breaker has opened."""
    retry_delay_s: float = 0.2
    """Backoff before a transiently failed message is delivered again."""
    tta_scene: bool = True
    """Open with the TTA scene when ``tta_agents`` is installed (False: never)."""
    plan_scene: bool = True
    """Run the plan scene (:mod:`.plan_scene`) after the TTA scene (False: never)."""
    meeting_scene: bool = True
    """Run the meeting scene (:mod:`.meeting_scene`) after the plan scene (False: never)."""


class PlayerCommand(BaseModel):
    """The payload of a request from ``input_processor`` to ``world_builder``."""

    player: str
    command: str


class WorldChanged(BaseModel):
    """The event ``world_builder`` publishes after handling a command."""

    kind: str = "world_changed"
    command: str
    description: str
    built_by: str


@dataclass(frozen=True)
class DemoEvent:
    """One line of the demo's story."""

    at: float
    """Seconds since the demo started."""
    act: str
    agent: str
    text: str
    level: EventLevel = "info"


@dataclass(frozen=True)
class AgentRow:
    """One worker in the live view."""

    label: str
    role: str
    state: str
    stats: WorkerStats


@dataclass(frozen=True)
class DemoSnapshot:
    """What the live view shows at one moment."""

    act: str
    elapsed: float
    agents: list[AgentRow]
    breaker: str
    transitions: list[str]
    outage: bool
    rejected: int
    answered: int
    events: list[DemoEvent]


@dataclass(frozen=True)
class Check:
    """One expectation of the demo and what actually happened."""

    name: str
    expected: str
    actual: str
    ok: bool


@dataclass
class DemoResult:
    """What the demo did, and whether every message ended where it should."""

    key_prefix: str
    elapsed: float = 0.0
    answered: int = 0
    """Requests that got a successful reply."""
    remote_errors: int = 0
    """Requests answered with ``RemoteHandlerError``."""
    not_delivered: int = 0
    """Request attempts refused while Redis was down (never enqueued)."""
    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0
    replies: int = 0
    dead_letters: list[str] = field(default_factory=list[str])
    """Commands in the ``world_builder`` dead-letter queues."""
    narrated: list[str] = field(default_factory=list[str])
    """Commands whose ``world_changed`` event was narrated, in order."""
    shared_answered_by: list[str] = field(default_factory=list[str])
    """The instance that answered each request sent to any ``world_builder``."""
    retry_seen_delayed: bool = False
    """Whether the transient failure's retry was seen waiting in the delayed set."""
    flaky_attempts: int = 0
    """Delivery on which the transiently failing command succeeded."""
    doomed_finished_by: str | None = None
    crashed_abandoned: int = 0
    crashed_stop_reason: str | None = None
    breaker_transitions: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    breaker_final: str = ""
    rejected: int = 0
    """Calls the open breaker refused at once."""
    injected: int = 0
    """Redis calls failed by the injected outage."""
    unsettled: int = 0
    error: str | None = None
    """Why the script stopped early, if it did."""
    checks: list[Check] = field(default_factory=list[Check])
    tta: TTASceneResult | None = None
    """What the TTA scene did (None when it did not run)."""
    tta_skipped: str | None = None
    """Why the TTA scene did not run: ``tta_agents`` is missing (None: it ran, or was
    turned off with ``DemoSettings.tta_scene``)."""
    plan: PlanSceneResult | None = None
    """What the plan scene did (None when it did not run)."""
    meeting: MeetingSceneResult | None = None
    """What the meeting scene did (None when it did not run)."""

    @property
    def ok(self) -> bool:
        """True when the script ran to its end and every check passed."""
        return self.error is None and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[str]:
        """A line for each failed check (and the early stop, if any)."""
        lines = [
            f"{c.name}: expected {c.expected}, got {c.actual}" for c in self.checks if not c.ok
        ]
        if self.error is not None:
            lines.insert(0, self.error)
        return lines


class DemoStepError(CoordinationError):
    """A step of the demo did not happen in time."""


@dataclass
class _Member:
    label: str
    role: str
    worker: AgentWorker
    registry: RedisAgentRegistry


class DemoScenario:
    """One run of the demo on ``client`` under ``key_prefix`` (see the module docstring).

    Args:
        client: the Redis (or FakeRedis) client; not closed here.
        key_prefix: prefix of every key the demo writes (the caller deletes them).
        settings: timings.
        on_event: called with each :class:`DemoEvent` as it happens.
    """

    def __init__(
        self,
        client: RedisClient,
        key_prefix: str,
        settings: DemoSettings | None = None,
        on_event: Callable[[DemoEvent], object] | None = None,
    ) -> None:
        self._client = client
        self._prefix = key_prefix
        self._settings = settings or DemoSettings()
        self._on_event = on_event
        self._started = time.monotonic()
        self._act = "setup"
        self._events: list[DemoEvent] = []
        self._members: list[_Member] = []
        self._transitions: list[tuple[str, str]] = []
        self._opened = asyncio.Event()
        self._closed_again = asyncio.Event()
        self._result = DemoResult(key_prefix=key_prefix)
        self.breaker: CircuitBreaker = redis_breaker(
            "redis",
            failure_threshold=self._settings.breaker_failures,
            timeout_seconds=self._settings.breaker_timeout_s,
            half_open_max_calls=3,
            success_threshold=2,
        )
        """The breaker around every Redis call of the demo."""
        self.breaker.add_listener(self._on_breaker)
        self.outage = OutageGuard(RedisGuard(breaker=self.breaker))
        """The guard that injects the Redis outage."""
        self.coordinator = RedisMessageCoordinator(
            client,
            key_prefix=key_prefix,
            guard=self.outage,
            retry_attempts=3,
            backoff_base=self._settings.retry_delay_s,
            backoff_factor=2.0,
            backoff_max=1.0,
        )
        """The queues (one coordinator: every agent of the demo lives in this process)."""
        self._directory = self._registry(self._settings.heartbeat_ttl_s)
        self._frozen = asyncio.Event()
        self._never = asyncio.Event()
        self.tta: TTAScene | None = None
        """The TTA scene, when ``tta_agents`` is installed (and the settings want it)."""
        if self._settings.tta_scene:
            try:
                api = load_tta_agents()
            except TTAAgentsUnavailable as exc:
                self._result.tta_skipped = str(exc)
            else:
                self.tta = TTAScene(
                    api,
                    self.coordinator,
                    lambda: self._registry(self._settings.heartbeat_ttl_s),
                    lambda agent, text, level: self._emit(agent, text, level),
                    step_timeout_s=self._settings.step_timeout_s,
                    worker_options={
                        "poll_interval": 0.3,
                        "maintenance_interval": 0.3,
                        "visibility_timeout": 5.0,
                        "grace_period": 2.0,
                    },
                )

        self.plan: PlanScene | None = None
        """The plan scene (None when the settings leave it out)."""
        if self._settings.plan_scene:
            self.plan = PlanScene(
                client,
                key_prefix,
                lambda agent, text, level: self._emit(agent, text, level),
                step_timeout_s=self._settings.step_timeout_s,
            )
        self.meeting: MeetingScene | None = None
        """The meeting scene (None when the settings leave it out)."""
        if self._settings.meeting_scene:
            self.meeting = MeetingScene(
                client,
                key_prefix,
                lambda agent, text, level: self._emit(agent, text, level),
                wait_s=self._settings.step_timeout_s,
            )

    # --- observing ----------------------------------------------------------------------

    @property
    def tta_skipped(self) -> str | None:
        """Why the TTA scene will not run (``tta_agents`` missing), in one line; else None."""
        return self._result.tta_skipped

    def snapshot(self) -> DemoSnapshot:
        """The demo's state now, for a live view."""
        metrics = self.breaker.metrics
        return DemoSnapshot(
            act=self._act,
            elapsed=time.monotonic() - self._started,
            agents=[
                *(
                    AgentRow(a.label, a.role, a.worker.state.value, a.worker.stats)
                    for a in (self.tta.agents if self.tta is not None else [])
                ),
                *(
                    AgentRow(label, role, worker.state.value, worker.stats)
                    for label, role, worker in (self.plan.agents if self.plan else [])
                ),
                *(
                    AgentRow(m.label, m.role, m.worker.state.value, m.worker.stats)
                    for m in self._members
                ),
            ],
            breaker=self.breaker.state.value,
            transitions=[f"{a} → {b}" for a, b in self._transitions],
            outage=self.outage.active,
            rejected=metrics.rejections,
            answered=self._result.answered,
            events=list(self._events),
        )

    def _emit(self, agent: str, text: str, level: EventLevel = "info") -> None:
        event = DemoEvent(time.monotonic() - self._started, self._act, agent, text, level)
        self._events.append(event)
        if self._on_event is not None:
            self._on_event(event)

    def _on_breaker(self, name: str, old: CircuitState, new: CircuitState) -> None:
        self._transitions.append((old.value, new.value))
        level: EventLevel = "warn" if new is CircuitState.OPEN else "ok"
        self._emit(f"breaker {name}", f"{old.value} → {new.value}", level)
        if new is CircuitState.OPEN:
            self._opened.set()
        elif new is CircuitState.CLOSED and self._opened.is_set():
            self._closed_again.set()

    # --- building the agents ------------------------------------------------------------

    def _registry(self, ttl: float) -> RedisAgentRegistry:
        return RedisAgentRegistry(
            self._client,
            key_prefix=self._prefix,
            heartbeat_ttl_s=ttl,
            guard=self.outage,
            coordinator=self.coordinator,
        )

    def _worker(
        self, agent_id: AgentId, label: str, role: str, *, ttl: float | None = None, **options: Any
    ) -> AgentWorker:
        registry = self._registry(ttl or self._settings.heartbeat_ttl_s)
        options.setdefault("poll_interval", 0.3)
        options.setdefault("maintenance_interval", 0.3)
        options.setdefault("visibility_timeout", 5.0)
        options.setdefault("grace_period", 2.0)
        worker = AgentWorker(self.coordinator, registry, agent_id, **options)
        self._members.append(_Member(label, role, worker, registry))
        return worker

    def _world_builder(
        self, agent_id: AgentId, label: str, *, freezes: bool, **options: Any
    ) -> AgentWorker:
        worker = self._worker(agent_id, label, "builds the world", **options)
        result = self._result

        @worker.on_request(payload=PlayerCommand)
        async def build(ctx: MessageContext[PlayerCommand]) -> dict[str, Any]:
            command = ctx.payload.command
            if command == POISON:
                self._emit(label, f"{command!r}: impossible → PermanentError", "warn")
                raise PermanentError("dragons cannot be summoned in this world")
            if command == FLAKY and ctx.attempts == 1:
                self._emit(label, f"{command!r}: world store timed out (attempt 1)", "warn")
                raise TimeoutError("the world store did not answer")
            if command == DOOMED and freezes:
                self._emit(label, f"{command!r}: started… and the process freezes", "warn")
                self._frozen.set()
                await self._never.wait()  # a frozen process never finishes its work
            if command == FLAKY:
                result.flaky_attempts = ctx.attempts
            if command == DOOMED:
                result.doomed_finished_by = label
            description = f"the world after {command!r}"
            await ctx.publish(
                WorldChanged(command=command, description=description, built_by=label)
            )
            self._emit(label, f"{command!r}: built (attempt {ctx.attempts}), event published", "ok")
            return {"description": description, "built_by": label}

        return worker

    def _narrator(self) -> AgentWorker:
        worker = self._worker(
            NARRATOR, "narrative_generator:n1", "narrates events", subscriptions=[MessageType.EVENT]
        )

        @worker.on_event(kind="world_changed", payload=WorldChanged)
        async def narrate(ctx: MessageContext[WorldChanged]) -> None:
            self._result.narrated.append(ctx.payload.command)
            self._emit("narrative_generator:n1", f"narrates {ctx.payload.command!r}")

        return worker

    # --- the script ---------------------------------------------------------------------

    async def run(self) -> DemoResult:
        """Run the four acts and the checks; never raises for a failed expectation."""
        result = self._result
        self._started = time.monotonic()
        try:
            if self.tta is not None:
                await self._tta_act(self.tta)
            if self.plan is not None:
                await self._plan_act(self.plan)
            if self.meeting is not None:
                await self._meeting_act(self.meeting)
            await self._play()
            await self._crash()
            await self._outage()
            await self._settle()
        except (DemoStepError, CoordinationError) as exc:
            result.error = f"the demo stopped during '{self._act}': {exc}"
            self._emit("demo", result.error, "error")
        finally:
            await self._teardown()
        result.elapsed = time.monotonic() - self._started
        if result.error is None:
            await self._collect()
        result.checks = self._checks()
        self._act = "done"
        return result

    def _begin(self, act: str, text: str) -> None:
        self._act = act
        self._emit("demo", text)

    async def _pause(self) -> None:
        if self._settings.pause_s > 0:
            await asyncio.sleep(self._settings.pause_s)

    async def _until(self, what: str, check: Callable[[], bool | Awaitable[bool]]) -> None:
        """Wait (polling) until ``check()`` holds, or fail the step after the step timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.step_timeout_s
        while True:
            value = check()
            if not isinstance(value, bool):
                value = await value
            if value:
                return
            if loop.time() > deadline:
                raise DemoStepError(
                    f"{what} did not happen within {self._settings.step_timeout_s:g}s"
                )
            await asyncio.sleep(0.05)

    async def _ask(self, command: str, target: AgentId) -> None:
        """Send one command as a request and wait for its reply."""
        anyone = "any " if target.is_type_wide else ""
        self._emit("input_processor", f"asks {anyone}{target} to {command!r}")
        try:
            reply = await self.coordinator.request(
                INPUT,
                target,
                PlayerCommand(player="ada", command=command),
                timeout=self._settings.step_timeout_s,
            )
        except RemoteHandlerError as exc:
            self._result.remote_errors += 1
            self._emit("input_processor", f"{command!r} refused: {exc.remote_message}", "warn")
            return
        self._result.answered += 1
        if target.is_type_wide:
            self._result.shared_answered_by.append(str(reply.sender))
        self._emit("input_processor", f"{command!r} answered by {reply.payload['built_by']}", "ok")

    async def _tta_act(self, scene: TTAScene) -> None:
        self._begin("tta", "three players act at once: each turn is a TTAPipeline workflow")
        self._result.tta = await scene.run()
        self._emit("demo", "TTA agents stopped; their queues are empty", "ok")
        await self._pause()

    async def _plan_act(self, scene: PlanScene) -> None:
        self._begin("plan", "a task planned into steps on agents, with a retry and a replan")
        self._result.plan = await scene.run()
        await self._pause()

    async def _meeting_act(self, scene: MeetingScene) -> None:
        self._begin("meeting", "a short meeting: turns in join order, a silent agent times out")
        self._result.meeting = await scene.run()
        await self._pause()

    async def _play(self) -> None:
        self._begin("play", "starting world_builder w1 and w2, narrative_generator n1")
        self._world_builder(
            W1,
            "world_builder:w1",
            freezes=True,
            concurrency=1,
            ttl=self._settings.crash_ttl_s,
            grace_period=0.2,
        )
        self._world_builder(W2, "world_builder:w2", freezes=False, concurrency=4)
        self._narrator()
        for member in self._members:
            await member.worker.start()
        await self._pause()
        self._begin("play", "the player sends five commands at once")
        watching = asyncio.ensure_future(self._watch_retry())
        try:
            await asyncio.gather(*(self._ask(command, target) for command, target in _PLAY))
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
        await self._until(
            "narration of the first commands", lambda: len(self._result.narrated) >= 4
        )
        await self._pause()

    async def _watch_retry(self) -> None:
        """Show the transient failure's retry waiting in the type queue's delayed set."""
        while True:
            stats = await self.coordinator.queue_stats(ANY_BUILDER)
            if stats.delayed:
                self._result.retry_seen_delayed = True
                self._emit(
                    "world_builder (any instance)",
                    f"{stats.delayed} retry scheduled in the delayed set, due in "
                    f"{self._settings.retry_delay_s:g}s on the Redis clock; the first free "
                    "instance takes it",
                    "warn",
                )
                return
            await asyncio.sleep(0.01)

    async def _crash(self) -> None:
        self._begin("crash", f"the player sends {DOOMED!r} to world_builder:w1")
        frozen_member = self._members[0]
        asking = asyncio.ensure_future(self._ask(DOOMED, W1))
        try:
            await asyncio.wait_for(self._frozen.wait(), self._settings.step_timeout_s)
            # The frozen process sends no more heartbeats: its registration runs out.
            await frozen_member.registry.stop_heartbeats()
            self._emit("world_builder:w1", "no more heartbeats", "warn")
            await self._until("expiry of w1's registration", self._w1_expired)
            self._emit("supervisor", "w1's registration expired: starting a replacement w1")
            replacement = self._world_builder(
                W1, "world_builder:w1 (replacement)", freezes=False, concurrency=1
            )
            # Registering over the expired holder hands its leased message back at once.
            await replacement.start()
            self._emit("registry", "the frozen w1's leased message is back in the queue")
            await asyncio.wait_for(asyncio.shield(asking), self._settings.step_timeout_s)
        finally:
            if not asking.done():
                asking.cancel()
            await asyncio.gather(asking, return_exceptions=True)
        # The frozen process wakes up: its next heartbeat finds the id taken, and the
        # worker stops without settling the work it had (the replacement did it).
        self._emit("world_builder:w1", "the frozen process wakes up")
        frozen_member.registry.start_heartbeats()
        await self._until(
            "the frozen w1 noticing it was replaced",
            lambda: frozen_member.worker.state is WorkerState.STOPPED,
        )
        self._emit(
            "world_builder:w1", f"stopped: {frozen_member.worker.stop_reason}; work abandoned", "ok"
        )
        await self._pause()

    async def _w1_expired(self) -> bool:
        record = await self._directory.get(W1)
        return record is None or not record.alive

    async def _idle(self) -> bool:
        for agent in (W1, W2, ANY_BUILDER, NARRATOR):
            if (await self.coordinator.queue_stats(agent)).unsettled:
                return False
        return all(m.worker.stats.in_flight == 0 for m in self._members)

    async def _outage(self) -> None:
        await self._until("every queue going idle", self._idle)
        self._begin("outage", "Redis becomes unreachable")
        self.outage.begin()
        asking = asyncio.ensure_future(self._ask_through_outage(BELL, W2))
        try:
            await asyncio.wait_for(self._opened.wait(), self._settings.step_timeout_s)
            await asyncio.sleep(self._settings.outage_after_open_s)
            self.outage.end()
            self._emit("demo", "Redis is back; the breaker probes it after its timeout")
            await asyncio.wait_for(self._closed_again.wait(), self._settings.step_timeout_s)
            await asyncio.wait_for(asyncio.shield(asking), self._settings.step_timeout_s)
        except TimeoutError:
            raise DemoStepError("the breaker did not open and close again in time") from None
        finally:
            self.outage.end()
            if not asking.done():
                asking.cancel()
            await asyncio.gather(asking, return_exceptions=True)
        await self._pause()

    async def _ask_through_outage(self, command: str, target: AgentId) -> None:
        """Ask until the request is enqueued: while Redis is down every attempt fails."""
        while True:
            try:
                await self._ask(command, target)
                return
            except RequestNotDeliveredError as exc:
                self._result.not_delivered += 1
                reason = exc.reason or "not delivered"
                fast = "open" in reason.lower()
                self._emit(
                    "input_processor",
                    f"{command!r} not sent ({'breaker open: failed fast' if fast else reason});"
                    " trying again",
                    "warn",
                )
                await asyncio.sleep(0.3)

    async def _settle(self) -> None:
        self._begin("check", "waiting for every message to settle")
        expected = len(COMMANDS) - 1
        await self._until(
            "narration of every change", lambda: len(self._result.narrated) >= expected
        )
        await self._until("every queue going idle", self._idle)

    async def _teardown(self) -> None:
        self._never.set()  # release a frozen handler that is somehow still waiting
        if self.tta is not None:
            await self.tta.stop()  # a no-op unless the scene failed half-way
        if self.plan is not None:
            await self.plan.stop()  # likewise
        if self.meeting is not None:
            await self.meeting.stop()  # likewise
        for member in self._members:
            await member.worker.stop(grace_period=2.0)
        for member in self._members:
            await member.registry.aclose()
        await self._directory.aclose()
        await self.coordinator.aclose()

    async def _collect(self) -> None:
        result = self._result
        builders = [m for m in self._members if m.worker.agent_id.type == W1.type]
        for member in builders:
            stats = member.worker.stats
            result.acked += stats.succeeded
            result.retried += stats.retried
            result.dead_lettered += stats.dead_lettered
            result.replies += stats.replies
        frozen = self._members[0].worker
        result.crashed_abandoned = frozen.stats.abandoned
        result.crashed_stop_reason = frozen.stop_reason
        for agent in (W1, W2, ANY_BUILDER):
            letters = await self.coordinator.dead_letters(agent)
            result.dead_letters.extend(
                str(d.message.payload.get("command")) if isinstance(d, DeadLetter) else "?"
                for d in letters
            )
        for agent in (W1, W2, ANY_BUILDER, NARRATOR):
            result.unsettled += (await self.coordinator.queue_stats(agent)).unsettled
        result.breaker_transitions = list(self._transitions)
        result.breaker_final = self.breaker.state.value
        result.rejected = self.breaker.metrics.rejections
        result.injected = self.outage.injected

    def _checks(self) -> list[Check]:
        r = self._result
        ok_commands = sorted(c for c, _ in COMMANDS if c != POISON)
        trip = ("closed", "open") in r.breaker_transitions
        recovered = ("half_open", "closed") in r.breaker_transitions

        def check(name: str, expected: object, actual: object, ok: bool | None = None) -> Check:
            return Check(name, str(expected), str(actual), expected == actual if ok is None else ok)

        transitions = (
            " → ".join([r.breaker_transitions[0][0], *(n for _, n in r.breaker_transitions)])
            if r.breaker_transitions
            else "-"
        )
        return [
            check("requests answered", len(ok_commands), r.answered),
            check("requests refused (RemoteHandlerError)", 1, r.remote_errors),
            check("world_builder acks", len(ok_commands), r.acked),
            check(
                "requests to any world_builder answered by w1/w2",
                sum(1 for _, t in _PLAY if t.is_type_wide),
                len(r.shared_answered_by),
                len(r.shared_answered_by) == sum(1 for _, t in _PLAY if t.is_type_wide)
                and set(r.shared_answered_by) <= {str(W1), str(W2)},
            ),
            check("transient failures retried", 1, r.retried),
            check(f"{FLAKY!r} succeeded on delivery", 2, r.flaky_attempts),
            check("dead-lettered", 1, r.dead_lettered),
            check("dead-letter queue holds", POISON, ", ".join(r.dead_letters) or "-"),
            check("replies sent by workers", len(COMMANDS), r.replies),
            check(
                "events narrated, one per change",
                len(ok_commands),
                len(r.narrated),
                sorted(r.narrated) == ok_commands,
            ),
            check(f"{DOOMED!r} finished by", "w1 (replacement)", _short(r.doomed_finished_by)),
            check("frozen w1 stopped because", "registration lost", r.crashed_stop_reason),
            check("frozen w1 work abandoned", 1, r.crashed_abandoned),
            check(
                "breaker opened and closed again",
                "closed → open → … → closed",
                transitions,
                trip and recovered,
            ),
            check("breaker state at the end", "closed", r.breaker_final),
            check("calls refused fast while open", "> 0", r.rejected, r.rejected > 0),
            check("messages left unsettled", 0, r.unsettled),
            *(Check(name, str(e), str(a), ok) for name, e, a, ok in self._tta_checks()),
            *(Check(name, str(e), str(a), ok) for name, e, a, ok in self._plan_checks()),
            *(Check(name, str(e), str(a), ok) for name, e, a, ok in self._meeting_checks()),
        ]

    def _tta_checks(self) -> list[tuple[str, object, object, bool]]:
        if self.tta is None:
            return []
        if self._result.tta is None:  # it stopped early: the error says why
            return [("TTA scene ran to its end", "yes", "no", False)]
        return self.tta.checks()

    def _plan_checks(self) -> list[tuple[str, object, object, bool]]:
        if self.plan is None:
            return []
        if self._result.plan is None:  # it stopped early: the error says why
            return [("plan scene ran to its end", "yes", "no", False)]
        return self.plan.checks()

    def _meeting_checks(self) -> list[tuple[str, object, object, bool]]:
        if self.meeting is None:
            return []
        if self._result.meeting is None:  # it stopped early: the error says why
            return [("meeting scene ran to its end", "yes", "no", False)]
        return self.meeting.checks()


def _short(label: str | None) -> str | None:
    return label.removeprefix("world_builder:") if label else label


async def run_demo(
    client: RedisClient,
    key_prefix: str,
    *,
    settings: DemoSettings | None = None,
    on_event: Callable[[DemoEvent], object] | None = None,
) -> DemoResult:
    """Run the demo once on ``client`` under ``key_prefix`` and return what happened.

    The keys under ``key_prefix`` are left for the caller to delete.
    """
    return await DemoScenario(client, key_prefix, settings, on_event).run()
