"""``FetchLoop``: a worker's leasing of new messages, fenced by its registration.

The loop reserves as many messages as the worker has room for (its handler slots, plus
one read's worth queued for a slot when its reads adapt: :mod:`.adaptive`), with blocking
reads over the agent's own queue and then its type queue (the queue of "any instance of
the type", shared with the type's other instances). An idle read blocks for
:data:`IDLE_BLOCK_S` (or the poll interval, when longer): the worker's stop (a stop
request, or a lost registration) ends it at once, so an idle worker costs one receive
script per queue per block and nothing in between. Before every read it asks the
registry whether the agent's registration is ``HELD`` (renewed within its TTL): while it
is ``UNVERIFIED`` (the process stalled past the TTL, so another process may have taken
the agent over) it leases nothing and waits for the registry's heartbeat to settle it;
once it is ``LOST`` the worker stops. A batch
that a blocking read returns after such a stall is given back unhandled. See
``docs/worker.md`` ("Fencing").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tta_agent_coordination.errors import CircuitBreakerOpenError
from tta_agent_coordination.interfaces import MessageCoordinator, Ownership
from tta_agent_coordination.models import AgentId, ReceivedMessage
from tta_agent_coordination.observability.tracing import Tracing
from tta_agent_coordination.runtime.adaptive import HandlerSlots, ReadSizer
from tta_agent_coordination.runtime.presence import AgentPresence
from tta_agent_coordination.runtime.stopping import wait_any
from tta_agent_coordination.runtime.supervision import OUTAGE_ERRORS, Progress

__all__ = ["IDLE_BLOCK_S", "FetchLoop", "FetchSettings"]

IDLE_BLOCK_S = 30.0
"""Longest blocking read of an idle worker: the stop ends it early, a message at once."""

_BACKOFF_MAX_S = 5.0
"""The longest wait after a failed read while the back-end is unreachable."""
_VERIFY_POLL_S = 0.05
"""How often a fenced loop asks whether its registration was verified."""
_GIVE_BACK_S = 0.001
"""A fenced batch's leases are cut to this, so the owner's next read takes them."""


@dataclass(frozen=True)
class FetchSettings:
    """How a worker reads: its limits, from the worker's settings."""

    concurrency: int
    """Handlers run at once (deliveries held)."""
    batch_size: int
    """Most messages reserved per read (the first read's, when ``adaptive``)."""
    visibility_s: float
    """Seconds each reservation lasts."""
    poll_s: float
    """Longest wait for a free handler slot between checks of the registration."""
    block_s: float = IDLE_BLOCK_S
    """Longest single blocking read (ended early by the worker's stop)."""
    adaptive: bool = False
    """Whether reads grow with the backlog and shrink while handlers lag, holding up to
    ``concurrency`` + one read of deliveries (see :class:`.adaptive.ReadSizer`)."""


class FetchLoop:
    """Leases messages for a worker while its registration is held (module docstring).

    Args:
        coordinator: the queues.
        agent_id: the agent (queue) the worker runs as; its type queue is read after it.
        presence: the worker's registration, asked before every read.
        settings: the worker's read limits.
        deliveries: the worker's running deliveries by token (read live: their count
            is the slots taken).
        spawn: starts the handler of one reserved message.
        stop_requested: set when the worker stops; the loop then returns (a blocking
            read in progress ends at once).
        slot_free: set by the worker when a delivery finishes.
        on_lost: called when the registration is found lost; the worker stops.
        log: the worker's logger.
        tracing: the worker's spans (a ``receive`` span per read that reserved messages).
        slots: the worker's handler slots: how many leased deliveries wait for one tells
            an adaptive read to shrink.
    """

    def __init__(
        self,
        coordinator: MessageCoordinator,
        agent_id: AgentId,
        presence: AgentPresence,
        settings: FetchSettings,
        *,
        deliveries: Mapping[str, object],
        spawn: Callable[[ReceivedMessage], None],
        stop_requested: asyncio.Event,
        slot_free: asyncio.Event,
        on_lost: Callable[[], None],
        log: Any,
        tracing: Tracing | None = None,
        slots: HandlerSlots | None = None,
    ) -> None:
        self._coordinator = coordinator
        self._agent_id = agent_id
        self._also = (agent_id.type_queue,)
        self._presence = presence
        self._settings = settings
        self._deliveries = deliveries
        self._spawn = spawn
        self._stop_requested = stop_requested
        self._slot_free = slot_free
        self._on_lost = on_lost
        self._log = log
        self._tracing = tracing if tracing is not None else Tracing()
        self._slots = slots
        self.sizer = ReadSizer(settings.batch_size, settings.adaptive)
        """The size of the next read (public for tests)."""

    async def run(self, progress: Progress) -> None:
        """Lease and spawn until the worker stops or its registration is lost.

        Outages are waited out here (with backoff, for as long as they last); any other
        error ends the call, and the worker's supervisor restarts it (or gives up).
        """
        settings = self._settings
        outages = 0
        sizer = self.sizer
        while not self._stop_requested.is_set():
            # Adaptive: the running handlers plus one read queued for a slot (and
            # extended by the lease keeper like them); fixed: the handlers only.
            held = settings.concurrency + (sizer.batch if settings.adaptive else 0)
            free = held - len(self._deliveries)
            if free <= 0:
                self._slot_free.clear()
                await wait_any(self._slot_free, self._stop_requested, timeout=settings.poll_s)
                if self._presence.ownership() is Ownership.LOST:
                    self._on_lost()
                continue
            if not await self._wait_until_held():
                return
            started_ns = time.time_ns()
            asked = min(free, sizer.batch)
            try:
                batch = await self._coordinator.receive_batch(
                    self._agent_id,
                    asked,
                    visibility_timeout=settings.visibility_s,
                    block=settings.block_s,
                    also=self._also,
                    interrupt=self._stop_requested,
                )
            except OUTAGE_ERRORS as exc:
                outages += 1
                delay = min(_BACKOFF_MAX_S, 0.05 * 2 ** min(outages, 16))
                if isinstance(exc, CircuitBreakerOpenError) and exc.retry_after:
                    # The breaker already paces the retries (its open time grows while
                    # Redis stays down): wait for it alone, not for a backoff of our own
                    # on top, which would add seconds after Redis answers again.
                    delay = min(_BACKOFF_MAX_S, exc.retry_after)
                self._log.warning("receive_failed", error=str(exc), retry_in=round(delay, 3))
                await wait_any(self._stop_requested, timeout=delay)
                continue
            outages = 0
            progress()
            if self._slots is not None:
                sizer.observe(asked, len(batch), self._slots.waiting, self._slots.free)
            if batch and self._presence.ownership() is not Ownership.HELD:
                # Leased across a stall (a blocking read that returned once the frozen
                # process resumed), or after the registration was lost: not ours.
                await self._give_back(batch)
                continue
            if batch:
                self._tracing.received(batch, started_ns)
            for received in batch:
                self._spawn(received)

    async def _wait_until_held(self) -> bool:
        """Wait while the registration is unverified; False once it is lost or stopping."""
        ownership = self._presence.ownership()
        if ownership is Ownership.HELD:
            return True
        loop = asyncio.get_running_loop()
        since = loop.time()
        if ownership is Ownership.UNVERIFIED:
            self._log.warning(
                "registration_unverified",
                detail="not renewed within its TTL (a stall?); leasing nothing until verified",
            )
        while ownership is Ownership.UNVERIFIED and not self._stop_requested.is_set():
            await wait_any(self._stop_requested, timeout=_VERIFY_POLL_S)
            ownership = self._presence.ownership()
        if ownership is Ownership.LOST:
            self._on_lost()
            return False
        if self._stop_requested.is_set():
            return False
        self._log.info("leasing_resumed", waited_s=round(loop.time() - since, 3))
        return True

    async def _give_back(self, batch: list[ReceivedMessage]) -> None:
        """Return a batch leased under an unverified or lost registration, unhandled.

        Each lease is cut to a millisecond, on the queue it was taken from, so the
        agent's owner (or, from the type queue, any live instance) receives the messages
        with its next read (a lease that ran out counts as a delivery). A back-end
        without lease extension keeps them until their visibility timeout.
        """
        self._log.warning("fenced_batch_returned", count=len(batch))
        results = await asyncio.gather(
            *(
                self._coordinator.extend_lease(r.queue or self._agent_id, r.token, _GIVE_BACK_S)
                for r in batch
            ),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:  # their leases run out after the visibility timeout instead
            self._log.warning(
                "fenced_batch_return_failed", count=len(errors), error=repr(errors[0])
            )
