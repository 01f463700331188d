"""``AgentWorker``: turns handlers into a live agent.

One worker consumes one agent's queue. It registers the agent and keeps it alive,
reserves messages with blocking reads (no polling) as handler slots free up, runs up to
``concurrency`` handlers at once, extends the leases of long handlers, acks on success
and nacks on failure (``PermanentError`` and invalid payloads are permanent, anything
else is retried with backoff), answers requests with the handler's return value, and
stops gracefully: on SIGINT/SIGTERM it takes no new work, lets in-flight handlers finish
within a grace period, leaves what is left leased (recovered after the visibility
timeout) and deregisters. A handler's exception never stops the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tta_agent_coordination.errors import (
    AgentRegistryError,
    CircuitBreakerOpenError,
    ConfigurationError,
    CoordinationError,
    PermanentError,
    WorkerError,
)
from tta_agent_coordination.interfaces import AgentRegistry, CallGuard
from tta_agent_coordination.models import (
    AgentId,
    FailureType,
    MessageType,
    ReceivedMessage,
)
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.replies import expects_reply
from tta_agent_coordination.runtime.context import MessageContext
from tta_agent_coordination.runtime.handlers import Handler, HandlerSpec, HandlerTable

__all__ = ["AgentWorker", "WorkerState", "WorkerStats"]

H = TypeVar("H", bound=Handler)

_FETCH_BACKOFF_MAX_S = 5.0


class WorkerState(StrEnum):
    """Where a worker is in its life."""

    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass
class WorkerStats:
    """Counters of one worker since it started."""

    received: int = 0
    """Deliveries reserved."""
    succeeded: int = 0
    """Handled and acked."""
    retried: int = 0
    """Failed and scheduled for another delivery."""
    dead_lettered: int = 0
    """Failed for good (permanent failure, invalid payload, no handler, retries spent)."""
    replies: int = 0
    """Replies sent to requests."""
    lease_extensions: int = 0
    """Leases pushed forward while a handler ran."""
    leases_lost: int = 0
    """Deliveries whose lease expired before they were settled (handled elsewhere)."""
    settle_errors: int = 0
    """Acks/nacks that failed on Redis errors (the lease expires and the message returns)."""
    abandoned: int = 0
    """In-flight deliveries left leased at shutdown after the grace period."""
    in_flight: int = 0
    """Handlers running now."""


@dataclass(eq=False)
class _Job:
    received: ReceivedMessage
    context: MessageContext[Any] | None = None
    lease_until: float = 0.0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class AgentWorker:
    """Runs handlers for one agent's queue (see the module docstring).

    Args:
        coordinator: the queues.
        registry: where the agent registers and heartbeats; None runs unregistered (for
            several competing workers on one queue). Give the registry the coordinator
            (``RedisAgentRegistry(..., coordinator=coordinator)``) so that a replacement
            of a crashed worker gets its leased messages back at once.
        agent_id: the agent (and queue) this worker is.
        name: the registered name (the agent type by default).
        capabilities: registered capabilities (names, mappings or ``AgentCapability``).
        metadata: registered metadata (the worker adds its handlers, pid and host).
        concurrency: handlers run at once.
        batch_size: most messages reserved per read (``concurrency`` by default).
        visibility_timeout: seconds a reservation lasts before it is extended; a crashed
            worker's messages return to the queue after it.
        poll_interval: longest single blocking read; bounds how fast a stop is noticed.
        grace_period: seconds in-flight handlers get to finish on shutdown.
        maintenance_interval: seconds between recoveries of the queue (expired leases,
            due retries) and checks that the registration is still held.
        kind_field: the payload field that selects a handler by kind.
        guard: circuit breaker and retry policy around every handler (a handler's own
            ``guard=`` overrides it); an open breaker fails the delivery transiently.
        subscriptions: message types to subscribe the agent to (events published with
            ``publish_event`` then reach its queue); removed on a graceful stop.
        takeover: register even when another live owner holds the agent id.

    Raises:
        ConfigurationError: a setting is out of range.
    """

    def __init__(
        self,
        coordinator: RedisMessageCoordinator,
        registry: AgentRegistry | None,
        agent_id: AgentId,
        *,
        name: str | None = None,
        capabilities: Iterable[Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        concurrency: int = 8,
        batch_size: int | None = None,
        visibility_timeout: float = 30.0,
        poll_interval: float = 1.0,
        grace_period: float = 10.0,
        maintenance_interval: float = 15.0,
        kind_field: str = "kind",
        guard: CallGuard | None = None,
        subscriptions: Sequence[MessageType] = (),
        takeover: bool = False,
    ) -> None:
        if not isinstance(agent_id, AgentId):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigurationError(f"agent_id must be an AgentId, got {agent_id!r}")
        _positive("concurrency", concurrency)
        batch = concurrency if batch_size is None else batch_size
        _positive("batch_size", batch)
        _positive("visibility_timeout", visibility_timeout)
        _positive("poll_interval", poll_interval)
        _positive("maintenance_interval", maintenance_interval)
        if grace_period < 0:
            raise ConfigurationError(f"grace_period must be >= 0 seconds, got {grace_period}")
        self._coordinator = coordinator
        self._registry = registry
        self._agent_id = agent_id
        self._name = name or agent_id.type
        self._capabilities = list(capabilities or [])
        self._metadata = dict(metadata or {})
        self._concurrency = concurrency
        self._batch_size = min(batch, 1_000)
        self._visibility = float(visibility_timeout)
        self._poll = float(poll_interval)
        self._grace = float(grace_period)
        self._maintenance_every = float(maintenance_interval)
        self._guard = guard
        self._subscription_types = list(dict.fromkeys(MessageType(t) for t in subscriptions))
        self._takeover = takeover
        self._handlers = HandlerTable(kind_field)
        self._acks = _AckBatcher(coordinator, agent_id)
        self._stats = WorkerStats()
        self._state = WorkerState.NEW
        self._jobs: dict[str, _Job] = {}
        self._slot_free = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._force = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._shutdown_task: asyncio.Task[None] | None = None
        self._subscription_ids: list[str] = []
        self._registered = False
        self._started_heartbeats = False
        self._stop_reason: str | None = None
        self._log = get_logger(__name__, agent=str(agent_id))

    # --- handler registration -----------------------------------------------------------

    def handler(
        self,
        message_type: MessageType | None = None,
        *,
        kind: str | None = None,
        payload: type[BaseModel] | None = None,
        timeout: float | None = None,
        guard: CallGuard | None = None,
    ) -> Callable[[H], H]:
        """Register the decorated async function for ``message_type`` (None: any type).

        ``kind`` restricts it to messages whose payload's kind field has that value;
        ``payload`` validates the payload into a pydantic model (``ctx.payload``), an
        invalid payload failing the message permanently; ``timeout`` cancels a handler
        that runs longer (failure ``timeout``, retried). The function receives a
        :class:`MessageContext`; for a request, its return value (a dict, a pydantic
        model, None or any JSON value) is the reply.

        Raises:
            ConfigurationError: a handler for the same type and kind exists.
            WorkerError: the worker has already started.
        """
        resolved = MessageType(message_type) if message_type is not None else None

        def register(fn: H) -> H:
            self.add_handler(fn, resolved, kind=kind, payload=payload, timeout=timeout, guard=guard)
            return fn

        return register

    def on_request(
        self,
        *,
        kind: str | None = None,
        payload: type[BaseModel] | None = None,
        timeout: float | None = None,
        guard: CallGuard | None = None,
    ) -> Callable[[H], H]:
        """:meth:`handler` for ``REQUEST`` messages."""
        return self.handler(
            MessageType.REQUEST, kind=kind, payload=payload, timeout=timeout, guard=guard
        )

    def on_event(
        self,
        *,
        kind: str | None = None,
        payload: type[BaseModel] | None = None,
        timeout: float | None = None,
        guard: CallGuard | None = None,
    ) -> Callable[[H], H]:
        """:meth:`handler` for ``EVENT`` messages."""
        return self.handler(
            MessageType.EVENT, kind=kind, payload=payload, timeout=timeout, guard=guard
        )

    def on_response(
        self,
        *,
        kind: str | None = None,
        payload: type[BaseModel] | None = None,
        timeout: float | None = None,
        guard: CallGuard | None = None,
    ) -> Callable[[H], H]:
        """:meth:`handler` for ``RESPONSE`` messages (replies sent to this agent's queue)."""
        return self.handler(
            MessageType.RESPONSE, kind=kind, payload=payload, timeout=timeout, guard=guard
        )

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
        """The agent this worker runs as."""
        return self._agent_id

    @property
    def coordinator(self) -> RedisMessageCoordinator:
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
        snapshot.in_flight = len(self._jobs)
        return snapshot

    @property
    def stop_reason(self) -> str | None:
        """Why the worker stopped or is stopping (None while it runs)."""
        return self._stop_reason

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
            CoordinationError: Redis failed while registering or subscribing.
        """
        if self._state is not WorkerState.NEW:
            raise WorkerError(f"worker {self._agent_id} was already started ({self._state})")
        if not len(self._handlers):
            raise WorkerError(f"worker {self._agent_id} has no handlers; register one first")
        self._state = WorkerState.RUNNING
        try:
            await self._register()
            for message_type in self._subscription_types:
                subscription = await self._coordinator.subscribe(self._agent_id, [message_type])
                self._subscription_ids.append(subscription.subscription_id)
        except BaseException:
            self._state = WorkerState.STOPPED
            await self._unregister()
            raise
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._fetch_loop(), name=f"worker-fetch-{self._agent_id}"),
            loop.create_task(self._lease_keeper(), name=f"worker-leases-{self._agent_id}"),
            loop.create_task(self._maintenance(), name=f"worker-maintenance-{self._agent_id}"),
        ]
        self._log.info(
            "worker_started",
            concurrency=self._concurrency,
            handlers=len(self._handlers),
            registered=self._registered,
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
        """
        if self._state is WorkerState.NEW:
            await self.start()
        elif self._state is not WorkerState.RUNNING:
            raise WorkerError(f"worker {self._agent_id} has stopped; create a new one")
        restore = self._install_signal_handlers() if install_signal_handlers else _noop
        try:
            await self._stop_requested.wait()
        finally:
            try:
                await self.stop()  # signals stay handled: a second one forces the stop
            finally:
                restore()

    async def __aenter__(self) -> AgentWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _install_signal_handlers(self) -> Callable[[], None]:
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop, sig.name)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or a platform without signal support
            installed.append(sig)

        def restore() -> None:
            for sig in installed:
                loop.remove_signal_handler(sig)

        return restore

    async def _register(self) -> None:
        if self._registry is None:
            return
        metadata = {
            **self._metadata,
            "worker": {
                "handlers": [list(h) for h in self._handlers.describe()],
                "concurrency": self._concurrency,
                "pid": os.getpid(),
                "host": socket.gethostname(),
            },
        }
        await self._registry.register_id(
            self._agent_id,
            name=self._name,
            capabilities=self._capabilities,
            metadata=metadata,
            takeover=self._takeover,
        )
        self._registered = True
        if not self._registry_heartbeats_running():
            self._registry.start_heartbeats()
            self._started_heartbeats = True

    def _registry_heartbeats_running(self) -> bool:
        return bool(getattr(self._registry, "heartbeats_running", False))

    async def _unregister(self) -> None:
        for subscription_id in self._subscription_ids:
            try:
                await self._coordinator.unsubscribe(subscription_id)
            except CoordinationError as exc:
                self._log.warning("unsubscribe_failed", error=str(exc))
        self._subscription_ids.clear()
        registry = self._registry
        if registry is None or not self._registered:
            return
        self._registered = False
        try:
            await registry.deregister(self._agent_id)
        except AgentRegistryError as exc:
            self._log.warning("deregister_failed", error=str(exc))
        held = getattr(registry, "held", None)
        if self._started_heartbeats and (held is None or not held()):
            await registry.stop_heartbeats()

    async def _shutdown(self) -> None:
        self._state = WorkerState.STOPPING
        self._log.info("worker_stopping", reason=self._stop_reason, in_flight=len(self._jobs))
        fetch, keeper, maintenance = self._tasks or (None, None, None)
        if fetch is not None:
            # The fetch loop notices the stop within one blocking read.
            done, _ = await asyncio.wait({fetch}, timeout=self._poll + 5.0)
            if not done:
                fetch.cancel()
                await asyncio.gather(fetch, return_exceptions=True)
        late = await self._wait_in_flight()
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
        await self._unregister()
        self._state = WorkerState.STOPPED
        self._log.info("worker_stopped", **vars(self.stats))

    async def _wait_in_flight(self) -> set[asyncio.Task[None]]:
        """Wait for running handlers until the grace period ends or a stop is forced.

        Returns the handlers still running then.
        """
        running = {job.task for job in self._jobs.values() if job.task is not None}
        if not running:
            return set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace
        forced = asyncio.ensure_future(self._force.wait())
        try:
            while running and not self._force.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                done, _ = await asyncio.wait(
                    running | {forced}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                running -= done
        finally:
            forced.cancel()
        return {task for task in running if not task.done()}

    # --- consuming ----------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        failures = 0
        while not self._stop_requested.is_set():
            free = self._concurrency - len(self._jobs)
            if free <= 0:
                self._slot_free.clear()
                await _wait_any(self._slot_free, self._stop_requested)
                continue
            try:
                batch = await self._coordinator.receive_batch(
                    self._agent_id,
                    min(free, self._batch_size),
                    visibility_timeout=self._visibility,
                    block=self._poll,
                )
            except CoordinationError as exc:
                failures += 1
                delay = min(_FETCH_BACKOFF_MAX_S, 0.05 * 2**failures)
                if isinstance(exc, CircuitBreakerOpenError) and exc.retry_after:
                    delay = min(_FETCH_BACKOFF_MAX_S, max(delay, exc.retry_after))
                self._log.warning("receive_failed", error=str(exc), retry_in=round(delay, 3))
                await _wait_any(self._stop_requested, timeout=delay)
                continue
            failures = 0
            for received in batch:
                self._spawn(received)

    def _spawn(self, received: ReceivedMessage) -> None:
        self._stats.received += 1
        loop = asyncio.get_running_loop()
        job = _Job(received=received, lease_until=loop.time() + self._visibility)
        self._jobs[received.token] = job
        job.task = loop.create_task(self._process(job), name=f"handle-{received.token}")
        job.task.add_done_callback(lambda _t, token=received.token: self._finished(token))

    def _finished(self, token: str) -> None:
        self._jobs.pop(token, None)
        self._slot_free.set()

    async def _process(self, job: _Job) -> None:
        received = job.received
        message = received.message
        spec = self._handlers.find(message)
        try:
            if spec is None:
                kind = self._handlers.kind_of(message)
                raise PermanentError(
                    f"no handler for {message.message_type.value} messages"
                    + (f" of kind {kind!r}" if kind else "")
                )
            payload = spec.parse_payload(message.payload)
            context: MessageContext[Any] = MessageContext(
                self._coordinator, self._agent_id, received, payload
            )
            job.context = context
            result = await self._call_handler(spec, context)
        except asyncio.CancelledError:
            raise  # shutdown past the grace period: the message stays leased
        except Exception as exc:
            await self._fail(job, exc, self._job_log(received))
            return
        await self._succeed(job, result)

    async def _call_handler(self, spec: HandlerSpec, context: MessageContext[Any]) -> Any:
        guard = spec.guard or self._guard
        if guard is None and spec.timeout is None:
            return await spec.fn(context)  # the common case: no wrapper coroutine

        async def invoke() -> Any:
            if spec.timeout is None:
                return await spec.fn(context)
            try:
                async with asyncio.timeout(spec.timeout):
                    return await spec.fn(context)
            except TimeoutError as exc:
                raise HandlerTimeoutError(spec.name, spec.timeout) from exc

        if guard is None:
            return await invoke()
        return await guard.run(spec.name, invoke, retry=True)

    def _job_log(self, received: ReceivedMessage) -> Any:
        """A logger bound to one delivery; built only when there is something to log."""
        return self._log.bind(message_id=received.message.message_id, attempt=received.attempts)

    async def _succeed(self, job: _Job, result: Any) -> None:
        received = job.received
        try:
            if expects_reply(received.message) and await self._coordinator.reply(
                self._agent_id, received.message, result
            ):
                self._stats.replies += 1
            # After the reply (reply-before-ack), through the batcher: every ack that
            # is due while one ack round trip is in flight goes in the next one.
            acked = await self._acks.ack(received.token)
        except CoordinationError as exc:
            self._stats.settle_errors += 1
            self._job_log(received).warning("settle_failed", outcome="ack", error=str(exc))
            return
        if acked:
            self._stats.succeeded += 1
        else:
            self._stats.leases_lost += 1
            self._job_log(received).warning(
                "ack_refused", reason="lease expired; the message was redelivered"
            )

    async def _fail(self, job: _Job, exc: Exception, log: Any) -> None:
        received = job.received
        failure = _failure_of(exc)
        final = (
            failure is FailureType.PERMANENT
            or received.attempts > self._coordinator.config.retry_attempts
        )
        error = f"{type(exc).__name__}: {exc}"
        log.log(
            40 if final else 30,
            "handler_failed",
            failure=failure.value,
            final=final,
            error=error,
            exc_info=None if isinstance(exc, _EXPECTED_FAILURES) else exc,
        )
        try:
            if (
                final
                and expects_reply(received.message)
                and await self._coordinator.reply(
                    self._agent_id, received.message, error=exc, failure=failure
                )
            ):
                self._stats.replies += 1
            nacked = await self._coordinator.nack(self._agent_id, received.token, failure, error)
        except CoordinationError as settle_exc:
            self._stats.settle_errors += 1
            log.warning("settle_failed", outcome="nack", error=str(settle_exc))
            return
        if not nacked:
            self._stats.leases_lost += 1
        elif final:
            self._stats.dead_lettered += 1
        else:
            self._stats.retried += 1

    # --- background duties --------------------------------------------------------------

    async def _lease_keeper(self) -> None:
        """Extend the leases of handlers still running when half their lease is left."""
        loop = asyncio.get_running_loop()
        tick = max(0.01, self._visibility / 4)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            due = [j for j in self._jobs.values() if j.lease_until - now <= self._visibility / 2]
            if due:
                await asyncio.gather(*(self._extend(job) for job in due))

    async def _extend(self, job: _Job) -> None:
        token = job.received.token
        try:
            extended = await self._coordinator.extend_lease(self._agent_id, token, self._visibility)
        except CoordinationError as exc:
            self._log.warning("extend_lease_failed", token=token, error=str(exc))
            return
        if extended:
            job.lease_until = asyncio.get_running_loop().time() + self._visibility
            self._stats.lease_extensions += 1
        elif token in self._jobs:
            job.lease_until = float("inf")  # nothing more to extend
            if job.context is not None:
                job.context._mark_lease_lost()  # pyright: ignore[reportPrivateUsage]
            self._log.warning("lease_lost", token=token)

    async def _maintenance(self) -> None:
        """Recover the queue's expired leases and due retries; check the registration."""
        while True:
            await asyncio.sleep(self._maintenance_every)
            try:
                await self._coordinator.recover_pending(self._agent_id)
            except CoordinationError as exc:
                self._log.warning("recover_failed", error=str(exc))
            held = getattr(self._registry, "held", None)
            if self._registered and held is not None and self._agent_id not in held():
                # Another owner took the id over, or it was evicted: this process is
                # no longer the agent and must stop taking its work.
                self._log.error("registration_lost")
                self._registered = False
                self.request_stop("registration lost")
                return


class _AckBatcher:
    """Settles successful deliveries with ``ack_many``: one round trip per batch.

    ``ack(token)`` queues the token and waits for the batch it joins to be settled, so
    the caller keeps per-message semantics: it learns whether its own ack succeeded (or
    gets the ``CoordinationError`` of the batch), and the job holds its slot until then.
    A batch is sent as soon as the event loop is free to send it; tokens that arrive
    while it is in flight form the next batch, so nothing waits on a timer. A batch that
    fails is an ack that failed for each of its tokens: their leases expire and the
    messages come back (at-least-once).
    """

    _MAX = 1_000

    def __init__(self, coordinator: RedisMessageCoordinator, agent_id: AgentId) -> None:
        self._coordinator = coordinator
        self._agent_id = agent_id
        self._pending: list[tuple[str, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def ack(self, token: str) -> bool:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._pending.append((token, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush(), name=f"acks-{self._agent_id}")
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._MAX]
            del self._pending[: self._MAX]
            try:
                flags = await self._coordinator.ack_many(self._agent_id, [t for t, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:
                # Cancelled: the waiters are cancelled too (their leases expire).
                for _, future in batch + self._pending:
                    future.cancel()
                self._pending.clear()
                raise
            for (_, future), flag in zip(batch, flags, strict=True):
                if not future.done():
                    future.set_result(flag)


class HandlerTimeoutError(TimeoutError):
    def __init__(self, handler: str, timeout: float) -> None:
        super().__init__(f"handler {handler} ran longer than {timeout:g}s")


_EXPECTED_FAILURES = (PermanentError, ValidationError, HandlerTimeoutError)
"""Failures logged without a traceback: the handler or the payload said what went wrong."""


def _failure_of(exc: Exception) -> FailureType:
    if isinstance(exc, PermanentError | ValidationError):
        return FailureType.PERMANENT
    if isinstance(exc, HandlerTimeoutError):
        return FailureType.TIMEOUT
    return FailureType.TRANSIENT


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigurationError(f"{name} must be > 0, got {value}")


def _noop() -> None:
    return None


async def _wait_any(*events: asyncio.Event, timeout: float | None = None) -> None:  # noqa: ASYNC109
    """Wait until any of ``events`` is set, or ``timeout`` seconds pass."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, return_exceptions=True)
