"""``AckBatcher``: a worker's successful deliveries, settled with one ``ack_many`` per batch."""

from __future__ import annotations

import asyncio

from tta_agent_coordination.errors import WorkerError
from tta_agent_coordination.interfaces import MessageCoordinator
from tta_agent_coordination.models import AgentId

__all__ = ["AckBatcher"]


class AckBatcher:
    """Settles successful deliveries with ``ack_many``: one round trip per batch.

    ``ack(token)`` queues the token and waits for the batch it joins to be settled, so
    the caller keeps per-message semantics: it learns whether its own ack succeeded (or
    gets the ``CoordinationError`` of the batch), and the delivery holds its slot until
    then. A batch is sent as soon as the event loop is free to send it; tokens that
    arrive while it is in flight form the next batch, so nothing waits on a timer. A
    batch that fails, whatever the error, is an ack that failed for each of its tokens
    (each waiter gets the error and logs it): their leases expire and the messages come
    back (at-least-once). The batcher itself never dies: the next ``ack`` starts a new
    flush.
    """

    _MAX = 1_000

    def __init__(self, coordinator: MessageCoordinator, agent_id: AgentId) -> None:
        self._coordinator = coordinator
        self._agent_id = agent_id
        self._pending: list[tuple[str, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def ack(self, token: str) -> bool:
        """Ack ``token`` in the next batch; whether it was acked (False: lease lost)."""
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
                if len(flags) != len(batch):
                    raise WorkerError(
                        f"ack_many returned {len(flags)} flags for {len(batch)} tokens"
                    )
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
            for (_, future), flag in zip(batch, flags, strict=True):  # lengths checked
                if not future.done():
                    future.set_result(flag)
