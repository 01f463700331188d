"""Typed call of ``queue_receive.lua``: reserve messages, healing the queue first."""

from __future__ import annotations

from typing import Any, NamedTuple

from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.scripts.queue_common import ARGV_HEAD

__all__ = ["NAME", "Delivery", "ReceiveOutcome", "call"]

NAME = "queue_receive"


class Delivery(NamedTuple):
    """The layout of one delivery in ``ReceiveOutcome.deliveries``.

    The deliveries are left as the script's lists (``codec.decode_delivery`` unpacks them
    in this order) rather than built into tuples: this is the receive hot path.
    """

    token: str | bytes
    envelope: str | bytes
    deliveries: int
    """Deliveries including this one."""
    last_error: str | bytes
    first_enqueued_ms: int | str | bytes
    lease_deadline_ms: int


class ReceiveOutcome(NamedTuple):
    """What one receive call did and saw."""

    deliveries: list[Any]
    """The reserved messages, each a list in the layout of :class:`Delivery`."""
    server_now_ms: int
    last_ids: list[Any]
    """Last generated id of each ready stream when the call reserved fewer than it asked
    for (it drained them), for XREAD BLOCK; empty otherwise (see :attr:`drained`)."""
    wake_at_ms: int
    """When the next lease expires or retry is due (server clock), or -1 (none, or the
    call did not drain the queue)."""
    recovered: int
    """Expired leases and due retries handled before reserving."""
    expired: int
    """Messages dead-lettered because they expired before delivery."""
    moved: list[Any]
    """Raw entries of ``queue_common.MovedEntry`` (see ``moved_entries``)."""
    malformed: int
    """Entries not in the library's format, dead-lettered with failure ``malformed``."""
    wake_id: Any
    """Last id of the queue's wake stream (when drained; ``0-0`` when empty or not drained):
    a blocking caller waits on it too, so a retry or scheduled send that falls due before
    ``wake_at_ms`` wakes it (``QueueKeys.wake``)."""

    @property
    def drained(self) -> bool:
        """True when the call reserved fewer than it asked for.

        Its streams then hold nothing undelivered, and :attr:`last_ids`, :attr:`wake_id`
        and :attr:`wake_at_ms` say what to wait for.
        """
        return bool(self.last_ids)


def _parse(raw: list[Any]) -> ReceiveOutcome:
    deliveries, now, last_ids, wake_at, recovered, expired, moved, malformed, wake_id = raw
    return ReceiveOutcome(
        deliveries,
        int(now),
        last_ids,
        int(wake_at),
        int(recovered),
        int(expired),
        moved,
        int(malformed),
        wake_id,
    )


def call(
    queue: QueueKeys,
    *,
    count: int,
    visibility_ms: int,
    retry_attempts: int,
    dlq_max_len: int,
    dedupe_window_ms: int,
    maintenance_batch: int,
    lessee: str = "",
) -> ScriptCall[ReceiveOutcome]:
    """Reserve up to ``count`` messages of ``queue`` for ``visibility_ms``.

    ``lessee`` (an instance, ``str(AgentId)``) is recorded as the holder of each lease
    (``QueueKeys.lessees``): a worker receiving from its type queue names itself, so that
    releasing its leases when it dies covers the type queue too. Empty: not recorded.
    """
    return ScriptCall(
        NAME,
        queue.all_keys,
        [
            *ARGV_HEAD,
            count,
            visibility_ms,
            retry_attempts,
            dlq_max_len,
            dedupe_window_ms,
            maintenance_batch,
            lessee,
        ],
        _parse,
    )
