"""The meeting clock: times out expired turns of open meetings, even with no one left.

Participants' ``wait_for_turn`` time out a silent speaker's turn themselves; the clock
covers a meeting whose every participant process died. It reads the due index
(``{_mtgidx}:due``: meeting id -> a time at or before its turn's deadline), runs the
meeting's timeout script (a compare-and-set: a duplicate is a no-op) for each entry that
is due, and re-files it at the meeting's real deadline, or drops it once the meeting
ended. Any number of clocks may run (each timeout happens once); run one from a
worker process or with ``tta-coord meetings clock``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, cast

from tta_agent_coordination.errors import ConfigurationError, CoordinationError
from tta_agent_coordination.interactions.errors import MeetingNotFoundError
from tta_agent_coordination.interactions.lua import as_str, guarded
from tta_agent_coordination.observability.logging import get_logger

if TYPE_CHECKING:
    from tta_agent_coordination.interactions.messaging import AgentMessaging

__all__ = ["MeetingClock"]


class MeetingClock:
    """Advances expired turns of open meetings (``await clock.run()`` or ``tick()``).

    Args:
        messaging: the messaging whose meetings it keeps.
        idle_s: longest sleep between two looks at the index (a meeting created while
            it sleeps is seen within this).
        batch: meetings handled per look.
    """

    def __init__(self, messaging: AgentMessaging, *, idle_s: float = 0.5, batch: int = 100) -> None:
        if not idle_s > 0:
            raise ConfigurationError(f"idle_s must be > 0, got {idle_s}")
        if batch < 1:
            raise ConfigurationError(f"batch must be >= 1, got {batch}")
        self._m = messaging
        self._idle_s = idle_s
        self._batch = batch
        self._log = get_logger(__name__, prefix=messaging.coordinator.keys.prefix)
        self.timeouts = 0
        """Turns this clock timed out."""

    async def _server_ms(self) -> int:
        raw = await guarded("meeting_clock", lambda: self._m.redis.time())
        seconds, micros = cast(tuple[Any, Any], raw)
        return int(seconds) * 1000 + int(micros) // 1000

    async def tick(self) -> float:
        """Handle every due meeting once.

        Returns:
            Seconds until the next entry is due (at most ``idle_s``).
        """
        due = self._m.keys.meetings_due
        now = await self._server_ms()
        raw = await guarded(
            "meeting_clock",
            lambda: self._m.redis.zrangebyscore(due, "-inf", now, start=0, num=self._batch),
        )
        for item in cast(list[Any], raw):
            mid = as_str(item)
            try:
                # Re-files the meeting at its real deadline, or drops it once ended.
                self.timeouts += int(await self._m.meeting.check_timeout(mid))
            except MeetingNotFoundError:
                continue  # expired from Redis: check_timeout dropped it from the index
        head = await guarded(
            "meeting_clock", lambda: self._m.redis.zrange(due, 0, 0, withscores=True)
        )
        entries = cast(list[Any], head)
        if not entries:
            return self._idle_s
        now = await self._server_ms()
        return min(self._idle_s, max(0.0, (float(entries[0][1]) - now) / 1000))

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or cancelled); a Redis failure is logged and retried."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                pause = await self.tick()
            except CoordinationError as exc:
                self._log.warning("meeting_clock_failed", error=str(exc))
                pause = self._idle_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(pause, 0.005))
