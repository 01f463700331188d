"""Circuit-breaker state shared by every process through Redis: :class:`RedisBreakerStore`.

The state of each breaker is one Redis hash (``KeySpace(prefix).breaker_state(name)``),
changed by the Lua scripts of :mod:`tta_agent_coordination.redis.breaker_scripts`, which
read the Redis server clock, so every process sees the same state. Each operation is one
EVALSHA bounded by ``timeout_s``; after a failure the store refuses at once for
``retry_interval_s`` (raising
:class:`~tta_agent_coordination.resilience.BreakerStoreUnavailableError`), and the
breaker falls back to its own in-process state meanwhile. See ``docs/resilience.md``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.redis.breaker_scripts import (
    AcquireReply,
    BreakerReply,
    BreakerScriptCall,
    breaker_acquire,
    breaker_record,
    breaker_reset,
)
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.lua import ScriptSet
from tta_agent_coordination.resilience.breaker_state import (
    Admission,
    BreakerSnapshot,
    Outcome,
)
from tta_agent_coordination.resilience.breaker_store import (
    BreakerStore,
    BreakerStoreUnavailableError,
)
from tta_agent_coordination.resilience.config import CircuitBreakerConfig

__all__ = ["RedisBreakerStore"]

# The breaker's own logger, so store and breaker events read as one stream.
_log = get_logger("tta_agent_coordination.resilience")


def _ms(seconds: float) -> int:
    return max(int(seconds * 1000), 1)


def _snapshot(reply: BreakerReply) -> BreakerSnapshot:
    retry = reply.retry_after_ms
    return BreakerSnapshot(
        reply.state,
        reply.generation,
        reply.failures,
        retry / 1000 if retry is not None else None,
    )


class RedisBreakerStore(BreakerStore):
    """State shared by every process through one Redis hash per breaker.

    Transitions are Lua scripts (``redis/scripts/breaker_*.lua``) that use the Redis
    server's clock (``TIME``) for the open-until deadline, so process clocks never
    matter. All processes using one breaker name must use the same configuration.

    Args:
        redis: an asyncio Redis client (``decode_responses`` either way).
        key_prefix: the library's key prefix (``ao`` by default, as in TTA).
        timeout_s: bound on each store call; a slower call counts as unreachable.
        retry_interval_s: after a failure, refuse at once for this long (breakers use
            local state meanwhile) before trying Redis again.
        state_ttl_s: an idle breaker's hash expires after this (at least twice a
            breaker's longest open time), so abandoned names leave nothing behind.
        clock: monotonic clock for ``retry_interval_s``.
    """

    shared = True

    def __init__(
        self,
        redis: RedisClient,
        key_prefix: str = "ao",
        *,
        timeout_s: float = 0.25,
        retry_interval_s: float = 1.0,
        state_ttl_s: float = 86_400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not timeout_s > 0 or retry_interval_s < 0 or not state_ttl_s > 0:
            raise ConfigurationError(
                "RedisBreakerStore needs timeout_s > 0, retry_interval_s >= 0 and "
                f"state_ttl_s > 0 (got {timeout_s}, {retry_interval_s}, {state_ttl_s})"
            )
        self._keys = KeySpace(key_prefix)
        self._scripts = ScriptSet(redis)
        self.timeout_s = timeout_s
        self.retry_interval_s = retry_interval_s
        self.state_ttl_s = state_ttl_s
        self._clock = clock
        self._down_until: float | None = None

    @property
    def available(self) -> bool:
        """False while the store is refusing calls after a recent failure."""
        return self._down_until is None or self._clock() >= self._down_until

    def key(self, name: str) -> str:
        """The hash holding breaker ``name``'s state."""
        return self._keys.breaker_state(name)

    def _ttl_ms(self, config: CircuitBreakerConfig) -> int:
        return _ms(max(self.state_ttl_s, 2 * config.longest_open_s))

    async def _run(self, call: BreakerScriptCall, name: str) -> list[Any]:
        """Run ``call`` for breaker ``name`` within ``timeout_s``; its raw reply."""
        if self._down_until is not None and self._clock() < self._down_until:
            raise BreakerStoreUnavailableError(
                f"breaker store unavailable (retrying after {self.retry_interval_s}s)"
            )
        try:
            async with asyncio.timeout(self.timeout_s):
                reply = await call.run(self._scripts)
        except Exception as exc:
            first = self._down_until is None
            self._down_until = self._clock() + self.retry_interval_s
            if first:
                _log.warning(
                    "breaker_store_unavailable",
                    breaker=name,
                    error=repr(exc),
                    retry_in_s=self.retry_interval_s,
                )
            raise BreakerStoreUnavailableError(
                f"breaker store call {call.script} for {name!r} failed: {exc!r}"
            ) from exc
        if self._down_until is not None:
            self._down_until = None
            _log.info("breaker_store_restored", breaker=name)
        return reply

    async def acquire(self, name: str, config: CircuitBreakerConfig, now: float) -> Admission:
        """See :meth:`BreakerStore.acquire` (one EVALSHA of ``breaker_acquire``)."""
        call = breaker_acquire(
            self.key(name),
            half_open_max_calls=config.half_open_max_calls,
            probe_lease_ms=_ms(config.probe_lease_s),
            ttl_ms=self._ttl_ms(config),
        )
        reply = AcquireReply.parse(await self._run(call, name))
        return Admission(reply.allowed, reply.probe, _snapshot(reply.breaker))

    async def record(
        self,
        name: str,
        config: CircuitBreakerConfig,
        generation: int | None,
        probe: bool,
        outcome: Outcome,
        now: float,
    ) -> BreakerSnapshot:
        """See :meth:`BreakerStore.record` (one EVALSHA of ``breaker_record``)."""
        call = breaker_record(
            self.key(name),
            admitted_generation=generation,
            outcome=outcome,
            probe=probe,
            failure_threshold=config.failure_threshold,
            window_size=config.window_size,
            failure_rate_threshold=config.failure_rate_threshold,
            window_minimum_calls=config.window_minimum_calls,
            success_threshold=config.success_threshold,
            timeout_ms=_ms(config.timeout_seconds),
            timeout_multiplier=config.timeout_multiplier,
            max_timeout_ms=_ms(config.longest_open_s),
            ttl_ms=self._ttl_ms(config),
        )
        return _snapshot(BreakerReply.parse(await self._run(call, name)))

    async def reset(self, name: str, now: float) -> BreakerSnapshot:
        """See :meth:`BreakerStore.reset` (one EVALSHA of ``breaker_reset``)."""
        call = breaker_reset(self.key(name), ttl_ms=_ms(self.state_ttl_s))
        return _snapshot(BreakerReply.parse(await self._run(call, name)))
