"""``AgentWorker``: turns handlers into a live agent.

One worker consumes one agent's queue, then its type's queue (``AgentId(type)``, shared
with the type's other instances). It registers the agent and keeps it alive, leases
messages with blocking reads (an idle worker parks in one long read that its stop ends at
once; by default a read's size adapts to the backlog: :mod:`.adaptive`), runs up to
``concurrency`` handlers at once, extends the leases of long handlers, acks on success and
nacks on failure (``PermanentError`` and invalid payloads are permanent, anything else is
retried with backoff), answers requests with the handler's return value, and stops
gracefully: on SIGINT/SIGTERM it takes no new work, lets in-flight handlers finish within
a grace period, leaves what is left leased (recovered after the visibility timeout) and
deregisters. A handler's exception never stops the worker.

It leases only while its registration is known to be live (fencing: after a stall past
the heartbeat TTL it waits for the registry to verify it, and stops at once when it was
taken over), and it supervises its background loops: one that fails is logged and
restarted with backoff, and one that keeps failing stops the worker, which deregisters
so that a replacement can take over. See ``docs/worker.md``.

It knows the queues and the registry only through :mod:`tta_agent_coordination.interfaces`
(``docs/worker.md``, "Other back-ends", says which methods it uses).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from tta_agent_coordination.errors import ConfigurationError, WorkerError
from tta_agent_coordination.interfaces import AgentRegistry, CallGuard, MessageCoordinator
from tta_agent_coordination.models import AgentId, MessageType, ReceivedMessage
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.observability.tracing import Tracing
from tta_agent_coordination.runtime.adaptive import DEFAULT_CONCURRENCY, HandlerSlots
from tta_agent_coordination.runtime.deliveries import Delivery, DeliveryRunner, wait_in_flight
from tta_agent_coordination.runtime.fetching import IDLE_BLOCK_S, FetchLoop, FetchSettings
from tta_agent_coordination.runtime.handlers import (
    Handler,
    HandlerDecorators,
    HandlerSpec,
    HandlerTable,
)
from tta_agent_coordination.runtime.leases import LeaseKeeper
from tta_agent_coordination.runtime.maintenance import MaintenanceLoop
from tta_agent_coordination.runtime.presence import AgentPresence
from tta_agent_coordination.runtime.stats import WorkerState, WorkerStats
from tta_agent_coordination.runtime.stopping import install_stop_signals, nothing_to_restore
from tta_agent_coordination.runtime.supervision import RestartPolicy, TaskSupervisor

__all__ = ["AgentWorker", "WorkerState", "WorkerStats"]


class AgentWorker(HandlerDecorators):
    """Runs handlers for one agent's queue (see the module docstring).

    Args:
        coordinator: the queues: any :class:`MessageCoordinator` (the worker uses only
            that interface; ``RedisMessageCoordinator`` is the one in this package).
        registry: where the agent registers and heartbeats (any :class:`AgentRegistry`);
            None runs unregistered (for several competing workers on one queue). Give
            the registry the coordinator (``RedisAgentRegistry(...,
            coordinator=coordinator)``) so that a replacement of a crashed worker gets
            its leased messages back at once.
        agent_id: the agent (and queue) this worker is; a type-wide id means its
            ``"default"`` instance (``agent_id.concrete()``). It also consumes the type
            queue, ``agent_id.type_queue``, after its own.
        name: the registered name (the agent type by default).
        capabilities: registered capabilities (names, mappings or ``AgentCapability``).
        metadata: registered metadata (the worker adds its handlers, pid and host).
        concurrency: handlers run at once (8 by default).
        batch_size: most messages reserved per read (``concurrency`` by default). Given
            neither, reads adapt to the backlog (8 to 256, one read's worth may wait for a
            handler slot); given either, nothing adapts. See docs/worker.md.
        visibility_timeout: seconds a reservation lasts before it is extended; a crashed
            worker's messages return to the queue after it.
        poll_interval: how often a busy worker (no free slot) and a registered idle one
            check locally that the registration is still held; bounds how fast a lost
            registration stops the worker. An idle read blocks for
            ``max(poll_interval, 30)`` seconds, ended at once by a stop or a message.
        grace_period: seconds in-flight handlers get to finish on shutdown.
        maintenance_interval: seconds between recoveries of the queue (expired leases,
            due retries) and checks that the registration is still held.
        kind_field: the payload field that selects a handler by kind.
        guard: circuit breaker and retry policy around every handler (a handler's own
            ``guard=`` overrides it); an open breaker fails the delivery transiently.
        subscriptions: message types to subscribe the agent to (events published with
            ``publish_event`` then reach its queue); removed on a graceful stop.
        takeover: register even when another live owner holds the agent id.
        restart_policy: how a background loop (fetch, lease keeper, maintenance) that
            fails with an unexpected error is restarted, and after how many failures in
            a row the worker gives up and stops; ``RestartPolicy()`` by default.
        tracer_provider: an OpenTelemetry ``TracerProvider`` for the worker's spans
            (``receive``, ``process`` as a child of the sender's span, ``ack``,
            ``retry``, ``dead_letter``); None uses the global one. What handlers send
            and the replies are traced by the coordinator's (its ``tracer_provider``).
            A no-op without ``opentelemetry-api``; see docs/observability.md, "Tracing".

    Raises:
        ConfigurationError: a setting is out of range.
    """

    def __init__(
        self,
        coordinator: MessageCoordinator,
        registry: AgentRegistry | None,
        agent_id: AgentId,
        *,
        name: str | None = None,
        capabilities: Iterable[Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        concurrency: int | None = None,
        batch_size: int | None = None,
        visibility_timeout: float = 30.0,
        poll_interval: float = 1.0,
        grace_period: float = 10.0,
        maintenance_interval: float = 15.0,
        kind_field: str = "kind",
        guard: CallGuard | None = None,
        subscriptions: Sequence[MessageType] = (),
        takeover: bool = False,
        restart_policy: RestartPolicy | None = None,
        tracer_provider: Any | None = None,
    ) -> None:
        if not isinstance(agent_id, AgentId):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigurationError(f"agent_id must be an AgentId, got {agent_id!r}")
        agent_id = agent_id.concrete()
        # Either limit given: fixed reads, as configured (explicit values always win).
        self._adaptive = concurrency is None and batch_size is None
        concurrency = DEFAULT_CONCURRENCY if concurrency is None else concurrency
        _positive("concurrency", concurrency)
        batch = concurrency if batch_size is None else batch_size
        _positive("batch_size", batch)
        _positive("visibility_timeout", visibility_timeout)
        _positive("poll_interval", poll_interval)
        _positive("maintenance_interval", maintenance_interval)
        if grace_period < 0:
            raise ConfigurationError(f"grace_period must be >= 0 seconds, got {grace_period}")
        self._coordinator = coordinator
        self._agent_id = agent_id
        self._concurrency = concurrency
        self._batch_size = min(batch, 1_000)
        self._visibility = float(visibility_timeout)
        self._poll = float(poll_interval)
        self._grace = float(grace_period)
        self._maintenance_every = float(maintenance_interval)
        self._handlers = HandlerTable(kind_field)
        self._stats = WorkerStats()
        self._state = WorkerState.NEW
        self._deliveries: dict[str, Delivery] = {}
        self._slots = HandlerSlots(concurrency)
        self._slot_free = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._force = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._shutdown_task: asyncio.Task[None] | None = None
        self._stop_reason: str | None = None
        self._failure: str | None = None
        self._log = get_logger(__name__, agent=str(agent_id))
        self._supervisor = TaskSupervisor(
            restart_policy or RestartPolicy(), self._log, self._stop_requested, self._gave_up
        )
        self._tracing = Tracing(tracer_provider)
        self._runner = DeliveryRunner(
            coordinator,
            agent_id,
            self._handlers,
            guard,
            self._stats,
            self._log,
            self._tracing,
            slots=self._slots,
        )
        self._presence = AgentPresence(
            coordinator,
            registry,
            agent_id,
            name=name or agent_id.type,
            capabilities=capabilities or [],
            metadata=metadata or {},
            takeover=takeover,
            subscriptions=subscriptions,
            log=self._log,
        )

    # --- handler registration -----------------------------------------------------------

    def add_handler(
        self,
        fn: Handler,
        message_type: MessageType | None = None,
        *,
        kind: str | None = None,
        payload: type[BaseModel] | None = None,
        timeout: float | None = None,
        guard: CallGuard | None = None,
    ) -> None:
        """Register ``fn`` without a decorator; see :meth:`handler`."""
        if self._state is not WorkerState.NEW:
            raise WorkerError(f"worker {self._agent_id} has started; register handlers before")
        if not callable(fn):
            raise ConfigurationError(f"a handler must be an async function, got {fn!r}")
        self._handlers.add(
            HandlerSpec(
                fn=fn,
                message_type=MessageType(message_type) if message_type is not None else None,
                kind=kind,
                payload_model=payload,
                timeout=timeout,
                guard=guard,
            )
        )

    # --- properties ---------------------------------------------------------------------

    @property
    def agent_id(self) -> AgentId:
        """The agent this worker runs as (always one instance: see ``AgentId.concrete``)."""
        return self._agent_id

    @property
    def coordinator(self) -> MessageCoordinator:
        """The coordinator the worker consumes from."""
        return self._coordinator

    @property
    def state(self) -> WorkerState:
        """Where the worker is in its life."""
        return self._state

    @property
    def stats(self) -> WorkerStats:
        """A snapshot of the worker's counters."""
        snapshot = WorkerStats(**vars(self._stats))
        snapshot.in_flight = len(self._deliveries)
        return snapshot

    @property
    def stop_reason(self) -> str | None:
        """Why the worker stopped or is stopping (None while it runs).

        ``"registration lost"`` when another process took the agent over (or it was
        evicted); ``"<loop> failed <n> times in a row: <error>"`` when a background loop
        could not run (see :attr:`failure`); the signal's name, or what was passed to
        :meth:`request_stop`, otherwise.
        """
        return self._stop_reason

    @property
    def failure(self) -> str | None:
        """Why the worker could not run, when it stopped because a loop kept failing.

        None otherwise. :meth:`run` then raises ``WorkerError`` with this text.
        """
        return self._failure

    def handlers(self) -> list[tuple[str, str, str]]:
        """(message type, kind, handler name) of every registered handler."""
        return self._handlers.describe()

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Register the agent and start consuming; returns once the worker runs.

        Raises:
            WorkerError: the worker was started before, or has no handlers.
            AgentAlreadyRegisteredError: a live owner holds the agent id (see
                ``takeover``).
            CoordinationError: the back-end failed while registering or subscribing.
        """
        if self._state is not WorkerState.NEW:
            raise WorkerError(f"worker {self._agent_id} was already started ({self._state})")
        if not len(self._handlers):
            raise WorkerError(f"worker {self._agent_id} has no handlers; register one first")
        self._state = WorkerState.RUNNING
        try:
            await self._presence.enter(
                {
                    "handlers": [list(h) for h in self._handlers.describe()],
                    "concurrency": self._concurrency,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                }
            )
        except BaseException:
            self._state = WorkerState.STOPPED
            await self._presence.leave()
            raise
        keeper = LeaseKeeper(
            self._coordinator,
            self._agent_id,
            self._deliveries,
            self._visibility,
            self._stats,
            self._log,
        )
        fetch = FetchLoop(
            self._coordinator,
            self._agent_id,
            self._presence,
            FetchSettings(
                self._concurrency,
                self._batch_size,
                self._visibility,
                self._poll,
                max(self._poll, IDLE_BLOCK_S),
                adaptive=self._adaptive,
            ),
            deliveries=self._deliveries,
            spawn=self._spawn,
            stop_requested=self._stop_requested,
            slot_free=self._slot_free,
            on_lost=self._registration_lost,
            log=self._log,
            tracing=self._tracing,
            slots=self._slots,
        )
        maintenance = MaintenanceLoop(
            self._coordinator,
            self._agent_id,
            self._presence,
            every=self._maintenance_every,
            poll=self._poll,
            on_lost=self._registration_lost,
            log=self._log,
        )
        supervise = self._supervisor.start
        self._tasks = [
            supervise(
                "fetch loop",
                fetch.run,
                task_name=f"worker-fetch-{self._agent_id}",
                ends_on_stop=True,
            ),
            supervise("lease keeper", keeper.run, task_name=f"worker-leases-{self._agent_id}"),
            supervise(
                "maintenance", maintenance.run, task_name=f"worker-maintenance-{self._agent_id}"
            ),
        ]
        self._log.info(
            "worker_started",
            concurrency=self._concurrency,
            handlers=len(self._handlers),
            registered=self._presence.registered,
        )

    def request_stop(self, reason: str = "requested") -> None:
        """Ask the worker to stop; the shutdown runs in the background (see :meth:`stop`).

        Call it from the worker's event loop (signal handlers installed by :meth:`run`
        do). A second request while stopping ends the grace period at once.
        """
        if self._stop_requested.is_set():
            self._force.set()
            self._log.warning("stop_forced", reason=reason)
            return
        self._stop_reason = reason
        self._stop_requested.set()
        if self._state is WorkerState.RUNNING and self._shutdown_task is None:
            self._shutdown_task = asyncio.get_running_loop().create_task(
                self._shutdown(), name=f"worker-shutdown-{self._agent_id}"
            )

    async def stop(self, grace_period: float | None = None) -> None:
        """Stop gracefully and wait until the worker has stopped (idempotent).

        Args:
            grace_period: overrides the worker's grace period for this stop.
        """
        if grace_period is not None:
            if grace_period < 0:
                raise ConfigurationError(f"grace_period must be >= 0, got {grace_period}")
            self._grace = grace_period
            if grace_period == 0:
                self._force.set()
        if self._state is WorkerState.NEW:
            self._state = WorkerState.STOPPED
            return
        if not self._stop_requested.is_set():
            self.request_stop()
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.get_running_loop().create_task(self._shutdown())
        await asyncio.shield(self._shutdown_task)

    async def run(self, *, install_signal_handlers: bool = True) -> None:
        """Start, run until a stop is requested (SIGINT/SIGTERM by default), then stop.

        A worker already started with :meth:`start` just runs. A second signal skips
        the rest of the grace period.

        Raises:
            WorkerError: the worker stopped because a background loop kept failing
                (:attr:`failure`): it could not run. It has deregistered; a process
                supervisor should start a replacement.
        """
        if self._state is WorkerState.NEW:
            await self.start()
        elif self._state is not WorkerState.RUNNING:
            raise WorkerError(f"worker {self._agent_id} has stopped; create a new one")
        restore = nothing_to_restore
        if install_signal_handlers:
            restore = install_stop_signals(self.request_stop)
        try:
            await self._stop_requested.wait()
        finally:
            try:
                await self.stop()  # signals stay handled: a second one forces the stop
            finally:
                restore()
        if self._failure is not None:
            raise WorkerError(f"worker {self._agent_id} could not run: {self._failure}")

    async def __aenter__(self) -> AgentWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _shutdown(self) -> None:
        self._state = WorkerState.STOPPING
        self._log.info("worker_stopping", reason=self._stop_reason, in_flight=len(self._deliveries))
        fetch, keeper, maintenance = self._tasks or (None, None, None)
        if fetch is not None:
            # The fetch loop notices the stop within one blocking read.
            done, _ = await asyncio.wait({fetch}, timeout=self._poll + 5.0)
            if not done:
                fetch.cancel()
                await asyncio.gather(fetch, return_exceptions=True)
        self._slots.close()  # leased but not started: given back, not started late
        late = await wait_in_flight(self._deliveries.values(), self._grace, self._force)
        if late:
            # Past the grace period: the messages stay leased and return to the queue
            # when the lease expires (a delivery attempt is counted).
            self._stats.abandoned += len(late)
            self._log.warning("abandoned_in_flight", count=len(late))
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for task in (keeper, maintenance):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (keeper, maintenance) if t), return_exceptions=True)
        await self._presence.leave()
        self._state = WorkerState.STOPPED
        self._log.info("worker_stopped", **vars(self.stats))

    # --- consuming ----------------------------------------------------------------------

    def _registration_lost(self) -> None:
        """Stop: another process took the agent id over, or an operator evicted it."""
        if self._stop_requested.is_set():
            return
        self._log.error(
            "registration_lost",
            detail="another process holds the agent id now (or it was evicted); stopping",
        )
        self.request_stop("registration lost")

    def _gave_up(self, reason: str) -> None:
        """A background loop could not run: stop (and deregister) unless stopping already."""
        if self._stop_requested.is_set():
            return
        self._failure = reason
        self.request_stop(reason)

    def _spawn(self, received: ReceivedMessage) -> None:
        self._stats.received += 1
        loop = asyncio.get_running_loop()
        delivery = Delivery(received=received, lease_until=loop.time() + self._visibility)
        self._deliveries[received.token] = delivery
        delivery.task = loop.create_task(
            self._runner.run(delivery), name=f"handle-{received.token}"
        )
        delivery.task.add_done_callback(lambda t, token=received.token: self._finished(t, token))

    def _finished(self, task: asyncio.Task[None], token: str) -> None:
        self._deliveries.pop(token, None)
        self._slot_free.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The runner settles every outcome itself; this is a bug, never silent.
            self._log.error("delivery_crashed", token=token, error=repr(exc), exc_info=exc)


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigurationError(f"{name} must be > 0, got {value}")
