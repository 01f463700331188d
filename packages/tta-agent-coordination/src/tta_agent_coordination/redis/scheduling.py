"""Sending later: the due time of a delayed or scheduled send, and cancelling one.

A send with ``delay_s`` or ``not_before`` (see ``RedisMessageCoordinator.send_message``)
goes into its queue's delayed set, the one scheduled retries wait in, and a receive or
recovery promotes it into its ready stream once due. :func:`schedules` checks the
arguments and turns them into what ``queue_send.lua`` takes: a delay relative to the
Redis server's clock (the script adds it to ``TIME``, so a client with a skewed clock
still gets the delay it asked for), or an absolute instant compared with that clock.
:class:`Scheduler` cancels a scheduled send that is still in the delayed set
(``queue_cancel.lua``). See ``docs/concepts.md``, "Sending later".
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import datetime
from typing import cast

from tta_agent_coordination.errors import MessageValidationError
from tta_agent_coordination.models import AgentId, AgentMessage
from tta_agent_coordination.redis.core import CoordinatorCore
from tta_agent_coordination.redis.scripts import queue_cancel

__all__ = ["MAX_DELAY_S", "Schedule", "Scheduler", "schedules"]

MAX_DELAY_S = 10 * 366 * 86_400.0
"""The longest delay a send accepts (ten years): a longer one is surely a unit mistake."""

Schedule = tuple[int, int]
"""``(delay_ms, not_before_ms)`` of one message, as ``queue_send.SendItem`` takes them."""

_NOW: Schedule = (0, 0)


def schedules(
    messages: Sequence[AgentMessage],
    delay_s: float | Sequence[float | None] | None,
    not_before: datetime | Sequence[datetime | None] | None,
) -> list[Schedule] | None:
    """The schedule of each message; None when every one is sent at once.

    ``delay_s`` and ``not_before`` are each one value for every message or a sequence with
    one entry (or None) per message.

    Raises:
        MessageValidationError: a delay is negative, not finite or over
            :data:`MAX_DELAY_S`; ``not_before`` is naive (no time zone); a message has
            both; a sequence's length differs from the messages'; a message's
            ``expires_at`` is not after its due time (it could never be delivered).
    """
    if delay_s is None and not_before is None:
        return None
    delays = _per_message(delay_s, len(messages), "delay_s")
    instants = _per_message(not_before, len(messages), "not_before")
    return [schedule(m, d, nb) for m, d, nb in zip(messages, delays, instants, strict=True)]


def schedule(message: AgentMessage, delay_s: object, not_before: object) -> Schedule:
    """The schedule of one message (see :func:`schedules`, which raises the same errors).

    The arguments are typed ``object`` because they are checked here, at run time: a
    caller without a type checker gets a clear error, not a failure deep in a script.
    """
    if delay_s is not None and not_before is not None:
        raise MessageValidationError(
            f"message {message.message_id!r}: give delay_s or not_before, not both"
        )
    if delay_s is not None:
        if isinstance(delay_s, bool) or not isinstance(delay_s, (int, float)):
            raise MessageValidationError(
                f"message {message.message_id!r}: delay_s must be a number of seconds, "
                f"got {delay_s!r}"
            )
        if not math.isfinite(delay_s) or not 0 <= delay_s <= MAX_DELAY_S:
            raise MessageValidationError(
                f"message {message.message_id!r}: delay_s must be between 0 and "
                f"{MAX_DELAY_S:.0f} seconds, got {delay_s!r}"
            )
        # Rounded up: a message is never due before the delay asked for.
        delay_ms = math.ceil(delay_s * 1000)
        _check_expiry(message, time.time() * 1000 + delay_ms)
        return (delay_ms, 0) if delay_ms else _NOW
    if not_before is not None:
        if not isinstance(not_before, datetime):
            raise MessageValidationError(
                f"message {message.message_id!r}: not_before must be a datetime, got {not_before!r}"
            )
        if not_before.tzinfo is None or not_before.utcoffset() is None:
            raise MessageValidationError(
                f"message {message.message_id!r}: not_before must be timezone-aware "
                "(e.g. datetime.now(UTC) + timedelta(minutes=5)), got a naive datetime"
            )
        at_ms = math.ceil(not_before.timestamp() * 1000)
        _check_expiry(message, at_ms)
        return (0, at_ms) if at_ms > 0 else _NOW
    return _NOW


def _check_expiry(message: AgentMessage, due_ms: float) -> None:
    # A message that expires before it is due would only ever reach the dead-letter
    # queue. Checked with this process's clock: a borderline case that slips through is
    # dead-lettered as expired when it falls due, as any expired message is.
    if message.expires_at is not None and message.expires_at.timestamp() * 1000 <= due_ms:
        raise MessageValidationError(
            f"message {message.message_id!r} expires at {message.expires_at.isoformat()}, "
            "not after it is due: it could never be delivered"
        )


def _per_message(value: object, count: int, name: str) -> list[object]:
    """One value per message: ``value`` for each, or the entries of a sequence."""
    if not isinstance(value, (list, tuple)):
        # A scalar (or anything else, which schedule() refuses with a clear error).
        return [value] * count
    value = cast("Sequence[object]", value)
    if len(value) != count:
        raise MessageValidationError(
            f"{name} has {len(value)} entries for {count} messages: give one per message "
            "(None for one sent at once), or a single value for all"
        )
    return list(value)


class Scheduler:
    """Cancels scheduled sends for the coordinator (``cancel_scheduled``)."""

    def __init__(self, core: CoordinatorCore) -> None:
        self._core = core

    async def cancel(self, recipient: AgentId, message_id: str) -> bool:
        """Cancel ``message_id`` in ``recipient``'s queue while it is still delayed.

        See ``RedisMessageCoordinator.cancel_scheduled``.
        """
        core = self._core
        call = queue_cancel.call(core.keys.queue(recipient), message_id)
        # Not retried: a retry after a timeout whose first attempt was applied would
        # answer False for a message that was in fact cancelled.
        outcome = await core.run("cancel_scheduled", call)
        if outcome.cancelled:
            core.log.info("scheduled_send_cancelled", queue=str(recipient), message_id=message_id)
            await core.lifecycle.cancelled(recipient, message_id, outcome.first_enqueued_ms)
        return outcome.cancelled
