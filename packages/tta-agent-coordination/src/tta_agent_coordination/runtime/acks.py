"""``AckBatcher``: a worker's successful deliveries, settled with one ``ack_many`` per batch."""

from __future__ import annotations

import asyncio

from tta_agent_coordination.errors import WorkerError
from tta_agent_coordination.interfaces import MessageCoordinator
from tta_agent_coordination.models import AgentId

__all__ = ["AckBatcher"]


class AckBatcher:
    """Settles successful deliveries with ``ack_many``: one round trip per queue and batch.

    ``ack(queue, token)`` queues the token and waits for the batch it joins to be
    settled, so the caller keeps per-message semantics: it learns whether its own ack
    succeeded (or gets the ``CoordinationError`` of the batch), and the delivery holds
    its slot until then. A batch is sent as soon as the event loop is free to send it;
    tokens that arrive while it is in flight form the next batch, so nothing waits on a
    timer. A batch holding tokens of several queues (a worker's own and its type queue)
    is one ``ack_many`` per queue. A call that fails, whatever the error, is an ack that
    failed for each of its tokens (each waiter gets the error and logs it): their leases
    expire and the messages come back (at-least-once). The batcher itself never dies:
    the next ``ack`` starts a new flush.

    Args:
        coordinator: the queues.
        name: names the flush task (the worker's agent).
    """

    _MAX = 1_000

    def __init__(self, coordinator: MessageCoordinator, name: str) -> None:
        self._coordinator = coordinator
        self._name = name
        self._pending: list[tuple[AgentId, str, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def ack(self, queue: AgentId, token: str) -> bool:
        """Ack ``token`` of ``queue`` in the next batch; whether it was acked.

        False: the lease was lost (it expired and the message was recovered).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._pending.append((queue, token, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush(), name=f"acks-{self._name}")
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._MAX]
            del self._pending[: self._MAX]
            by_queue: dict[AgentId, list[tuple[str, asyncio.Future[bool]]]] = {}
            for queue, token, future in batch:
                by_queue.setdefault(queue, []).append((token, future))
            try:
                for queue, group in by_queue.items():
                    await self._settle(queue, group)
            except BaseException:
                # Cancelled: the waiters are cancelled too (their leases expire).
                for _, _, future in batch + self._pending:
                    future.cancel()
                self._pending.clear()
                raise

    async def _settle(self, queue: AgentId, group: list[tuple[str, asyncio.Future[bool]]]) -> None:
        """One ``ack_many``; each waiter gets its flag, or the error of the call."""
        try:
            flags = await self._coordinator.ack_many(queue, [t for t, _ in group])
            if len(flags) != len(group):
                raise WorkerError(f"ack_many returned {len(flags)} flags for {len(group)} tokens")
        except Exception as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), flag in zip(group, flags, strict=True):  # lengths checked
            if not future.done():
                future.set_result(flag)
