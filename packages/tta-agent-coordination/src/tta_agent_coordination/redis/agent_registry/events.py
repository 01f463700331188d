"""The registry's bounded event stream: reading (``events``) and following (``follow``).

Events are written by the scripts that make each change; this module only reads them
(XREAD, XREVRANGE). See ``docs/registry.md`` (Events).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from tta_agent_coordination.agents import RegistryEvent
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.redis.agent_registry.codec import decode_events
from tta_agent_coordination.redis.agent_registry.core import RegistryCore
from tta_agent_coordination.redis.codec import text

__all__ = ["EventStream"]

_STREAM_ID_RE = re.compile(r"^\d{1,20}(-\d{1,20})?$")


def _check_since(since: str) -> str:
    if not _STREAM_ID_RE.fullmatch(since):
        raise ConfigurationError(
            f"invalid event id {since!r}: pass the id of a RegistryEvent (such as "
            "'1700000000000-0')"
        )
    return since


class EventStream:
    """Reads the registry's event stream."""

    def __init__(self, core: RegistryCore) -> None:
        self._core = core

    async def events(self, since: str | None = None, limit: int = 100) -> list[RegistryEvent]:
        """Up to ``limit`` events after the event id ``since`` (from the oldest by default).

        Raises:
            ConfigurationError: ``limit`` is not positive or ``since`` is not an event id.
        """
        start = _check_since(since) if since is not None else "0-0"
        if limit <= 0:
            raise ConfigurationError(f"limit must be > 0, got {limit}")
        response = await self._xread(start, limit, None)
        return [event for _, event in decode_events(response) if event is not None]

    async def follow(
        self, since: str | None = None, *, block_s: float = 5.0, limit: int = 100
    ) -> AsyncIterator[RegistryEvent]:
        """Yield events as they are appended, forever (break out of the loop to stop).

        Raises:
            ConfigurationError: ``block_s`` or ``limit`` is not positive, or ``since`` is
                not an event id.
            RegistryUnavailableError: Redis failed (the iterator ends).
        """
        if not block_s > 0 or limit <= 0:
            raise ConfigurationError(f"block_s and limit must be > 0, got {block_s}, {limit}")
        last = _check_since(since) if since is not None else await self._last_event_id()
        block_ms = max(1, round(block_s * 1000))
        while True:
            response = await self._xread(last, limit, block_ms)
            for entry_id, event in decode_events(response):
                last = entry_id
                if event is not None:
                    yield event

    async def _xread(self, start: str, limit: int, block_ms: int | None) -> Any:
        stream = self._core.keys.registry_events
        redis = self._core.redis
        return await self._core.call(
            "registry_events",
            lambda: redis.xread({stream: start}, count=limit, block=block_ms),
            retry=True,
        )

    async def _last_event_id(self) -> str:
        stream = self._core.keys.registry_events
        redis = self._core.redis
        entries = await self._core.call(
            "registry_events",
            lambda: redis.xrevrange(stream, "+", "-", count=1),
            retry=True,
        )
        return text(entries[0][0]) if entries else "0-0"
