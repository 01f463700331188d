"""Receiving: reserve messages with the ``queue_receive`` script, wait for them, decode them.

A receive heals its queue first (expired leases back, due retries promoted, expired
messages dead-lettered), then reserves. A worker's receive covers two queues, its own and
its type queue (``also=``), one script each, in that order; on the type queue the
script records the worker's instance as the holder of each lease, so that releasing the
instance's leases (it died) hands them over at once. With ``block``, empty queues
are waited on with the coordinator's shared ``StreamWaiter`` (one ``XREAD BLOCK`` for
every waiting receive) for entries newer than the ones the scripts saw, never by
polling: new entries of the ready streams, and of each queue's wake stream, which gets
one when a retry or scheduled send falls due before the wake-up the script computed
(``queue_common.lua``, ``schedule_delayed``). An ``interrupt`` event ends that wait
(never a script call) at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from tta_agent_coordination.errors import ConfigurationError, CoordinationError
from tta_agent_coordination.models import AgentId, ReceivedMessage
from tta_agent_coordination.observability.metrics import TimingMetrics, timing_of
from tta_agent_coordination.redis.codec import DecodeError, decode_delivery
from tta_agent_coordination.redis.core import CoordinatorCore
from tta_agent_coordination.redis.parked import Parked, QueueView
from tta_agent_coordination.redis.scripts import queue_dlq_reject, queue_receive

__all__ = ["MAX_BATCH", "Receiver"]

MAX_BATCH = 1_000
"""Most messages one ``receive_batch`` reserves."""

_PARKED_SWEEP_AT = 256
"""Parked views kept before the stale ones are swept (one per set of queues received)."""

# Longest wait of a blocking receive before it runs the receive script again (healing
# its queue); it loops until its deadline. The shared StreamWaiter slices its own reads.
_MAX_BLOCK_SLICE_S = 30.0


class Receiver:
    """Reserves messages for the coordinator (``receive``, ``receive_batch``)."""

    def __init__(self, core: CoordinatorCore) -> None:
        self._core = core
        self._timing = timing_of(core.metrics)
        self._parked: dict[tuple[AgentId, ...], Parked] = {}

    def forget_parked(self) -> None:
        """Drop what earlier receives learned about their queues (parked.py).

        Called when this process shortens or releases a lease (``extend_lease``,
        ``release_leases``): nothing on a stream signals that, so the next receive runs
        its scripts first instead of waiting on an older view.
        """
        self._parked.clear()

    async def receive_batch(
        self,
        agent_id: AgentId,
        count: int,
        *,
        visibility_timeout: float,
        block: float | None,
        also: Sequence[AgentId] = (),
        interrupt: asyncio.Event | None = None,
    ) -> list[ReceivedMessage]:
        """Reserve up to ``count`` messages; see ``RedisMessageCoordinator.receive_batch``.

        ``agent_id``'s queue first, then each queue of ``also`` in order, until ``count``
        are reserved; a blocking wait covers every one of them in one shared read, and
        ends early (with nothing) once ``interrupt`` is set.

        Raises:
            ConfigurationError: an argument is out of range.
        """
        if not 1 <= count <= MAX_BATCH:
            raise ConfigurationError(f"count must be between 1 and {MAX_BATCH}, got {count}")
        if visibility_timeout <= 0:
            raise ConfigurationError(
                f"visibility_timeout must be > 0 seconds, got {visibility_timeout}"
            )
        if block is not None and block < 0:
            raise ConfigurationError(f"block must be >= 0 seconds or None, got {block}")
        queues = tuple(dict.fromkeys((agent_id, *also)))
        core = self._core
        cfg = core.config
        visibility_ms = max(1, int(visibility_timeout * 1000))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block if block else None
        # What the last blocking call of these queues learned (parked.py): a queue it
        # drained is waited on from there, without running its script first.
        parked = self._parked.pop(queues, None) if block else None
        views = parked.fresh(loop.time()) if parked is not None else {}
        inherited = set(views)
        run = [q for q in queues if q not in views]
        while True:
            received: list[ReceivedMessage] = []
            for queue in run:
                keys = core.keys.queue(queue)
                call = queue_receive.call(
                    keys,
                    count=count - len(received),
                    visibility_ms=visibility_ms,
                    retry_attempts=cfg.retry_attempts,
                    dlq_max_len=cfg.dlq_max_len,
                    dedupe_window_ms=int(cfg.dedupe_window_s * 1000),
                    maintenance_batch=cfg.maintenance_batch,
                    lessee=_lessee(agent_id, queue),
                )
                outcome = await self._reserve(queue, call)
                views.pop(queue, None)
                inherited.discard(queue)
                if outcome.drained:
                    views[queue] = QueueView.of(keys, outcome, loop.time())
                if outcome.deliveries:
                    received += await self._decode(queue, outcome.deliveries)
                    if len(received) >= count:
                        break
            if received:
                if deadline is not None and views:
                    self._park(queues, Parked(views), loop.time())
                return received
            if deadline is None or (interrupt is not None and interrupt.is_set()):
                return []
            now = loop.time()
            remaining = deadline - now
            if remaining <= 0:
                return []
            missing = [q for q in queues if q not in views]
            if missing:
                # Not drained by the last call (it filled its batch): look again.
                run = missing
                continue
            wait = min(remaining, _MAX_BLOCK_SLICE_S)
            dues = [v.wake_at for v in views.values() if v.wake_at is not None]
            if dues:
                wake_at = min(dues)
                wait = min(wait, max(0.001, wake_at - now))
            if inherited:
                # Views taken over from an earlier call are trusted only briefly (a lease
                # shortened meanwhile is not signalled on any stream): then look again.
                horizon = min(views[q].trusted_until for q in inherited)
                wait = min(wait, max(0.001, horizon - now))
            streams = {key: last for view in views.values() for key, last in view.streams.items()}
            woken = await self._wait_for_entries(streams, wait, interrupt)
            if interrupt is not None and interrupt.is_set():
                return []
            if not woken and wait >= remaining:
                # The whole block passed with no new entry and no retry falling due: the
                # queues are as the script left them, so return without running it again
                # (an idle worker then costs one script per queue per block, not two).
                return []
            now = loop.time()
            for queue in [q for q in inherited if now >= views[q].trusted_until]:
                inherited.discard(queue)
                del views[queue]
            # Only the queues that got an entry or fell due: on a wake-up, one script
            # call (one round trip) before the handler, not one per queue.
            run = [q for q in queues if q not in views or views[q].due(woken, now)] or list(queues)

    def _park(self, queues: tuple[AgentId, ...], parked: Parked, now: float) -> None:
        """Keep ``parked`` for the next receive of ``queues``; drop views nobody took."""
        if len(self._parked) >= _PARKED_SWEEP_AT:
            # Queues no receive waits on any more (their worker stopped): their views
            # are stale by now, and would otherwise stay for the coordinator's life.
            self._parked = {q: p for q, p in self._parked.items() if p.fresh(now)}
        self._parked[queues] = parked

    async def _reserve(self, queue: AgentId, call: Any) -> queue_receive.ReceiveOutcome:
        """Run one receive script on ``queue``; record and count what it moved on the way."""
        core = self._core
        outcome: queue_receive.ReceiveOutcome = await core.run("receive", call)
        name = str(queue)
        if outcome.moved:
            await core.lifecycle.moved(queue, outcome.moved)
        if outcome.recovered:
            core.metrics.inc_recovered(name, outcome.recovered)
        if outcome.expired:
            core.inc_expired(name, outcome.expired)
        if outcome.malformed:
            # Not ours to interpret: kept in the DLQ with its raw fields and the reason.
            core.log.error("malformed_entries_dead_lettered", queue=name, count=outcome.malformed)
            core.metrics.inc_permanent(name, outcome.malformed)
        if outcome.deliveries and self._timing is not None:
            _observe_waits(self._timing, name, outcome)
        return outcome

    async def _wait_for_entries(
        self, streams: dict[str, str], seconds: float, interrupt: asyncio.Event | None
    ) -> set[str]:
        """Block until an entry newer than its id arrives in ``streams``, or ``seconds`` pass.

        Returns the streams that got a new entry (empty when the time ran out, or when
        ``interrupt`` was set: the wait then ends at once).

        Waits through the coordinator's shared :class:`StreamWaiter` (one blocked XREAD
        for every waiting receive, not one connection each; the streams of an agent's
        queue and of its type queue are in different hash slots, which the waiter
        groups). It changes nothing; it only wakes the caller, which then reserves
        through the receive script (another consumer may win the race; it loops). Only
        this wait is ever cut short, never a script call, so an interrupt cannot lose a
        reserved batch.
        """
        return await self._core.waiter.wait(streams, seconds, interrupt)

    async def _decode(self, agent_id: AgentId, deliveries: list[Any]) -> list[ReceivedMessage]:
        """Decode the reserved deliveries of queue ``agent_id``; dead-letter undecodable ones.

        They go to the DLQ as ``malformed`` with their raw fields (one script call for
        the batch); the rest of the batch is delivered.
        """
        received: list[ReceivedMessage] = []
        leased = deliveries
        rejected: list[tuple[str, str]] = []
        for item in deliveries:
            try:
                received.append(decode_delivery(item, agent_id))
            except DecodeError as exc:
                self._core.log.error(
                    "undecodable_message", queue=str(agent_id), token=exc.token, error=str(exc)
                )
                rejected.append((exc.token, str(exc)))
                leased = [d for d in leased if d is not item]
        if rejected:
            await self._reject(agent_id, rejected)
        await self._core.lifecycle.leased(agent_id, received, leased)
        self._core.metrics.inc_received(str(agent_id), len(received))
        return received

    async def _reject(self, agent_id: AgentId, rejected: list[tuple[str, str]]) -> None:
        """Dead-letter undecodable deliveries as ``malformed``.

        A failure is logged, not raised: the decodable rest of the batch is delivered all
        the same, and the rejected ones come back when their lease expires.
        """
        core = self._core
        cfg = core.config
        call = queue_dlq_reject.call(
            core.keys.queue(agent_id),
            rejected,
            dlq_max_len=cfg.dlq_max_len,
            dedupe_window_ms=int(cfg.dedupe_window_s * 1000),
        )
        try:
            outcome = await core.run("receive", call)
        except CoordinationError as exc:
            core.log.warning("undecodable_not_dead_lettered", queue=str(agent_id), error=str(exc))
            return
        if outcome.moved:
            await core.lifecycle.moved(agent_id, outcome.moved)
        if outcome.dead_lettered:
            core.metrics.inc_permanent(str(agent_id), outcome.dead_lettered)


def _lessee(consumer: AgentId, queue: AgentId) -> str:
    """The lessee a receive from ``queue`` records: ``consumer`` on its own type queue.

    So ``release_leases(consumer)`` can hand over its type-queue leases at once; other
    queues record none (an instance queue has one consumer, released as a whole).
    """
    if not consumer.is_type_wide and queue == consumer.type_queue:
        return str(consumer)
    return ""


def _observe_waits(
    timing: TimingMetrics, queue: str, outcome: queue_receive.ReceiveOutcome
) -> None:
    """Report the queue wait of each first delivery: lease time minus send time.

    Both are on the Redis server clock (the script's ``TIME`` and the entry's ``t``), so
    clients with skewed clocks agree. Redeliveries are left out: their ``t`` is the first
    send, so their wait would include the earlier attempts.
    """
    now_ms = outcome.server_now_ms
    for item in outcome.deliveries:
        try:
            if int(item[2]) == 1:
                timing.observe_queue_wait(queue, max(0, now_ms - int(item[4])) / 1000)
        except (ValueError, TypeError, IndexError):
            continue  # malformed: dead-lettered by _decode, no wait to report
