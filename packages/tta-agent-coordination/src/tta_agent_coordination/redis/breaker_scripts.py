"""Typed calls of the circuit-breaker Lua scripts (``scripts/breaker_*.lua``).

Each script's KEYS, ARGV and reply are declared here, once: a function per script builds
its call from named parameters (:func:`breaker_acquire`, :func:`breaker_record`,
:func:`breaker_reset`), and a named tuple parses its reply (:class:`BreakerReply`,
:class:`AcquireReply`). The scripts bind their ARGV to locals of the same names. The
only key is the breaker's hash, ``KeySpace.breaker_state(name)``, passed in KEYS.

The state machine the scripts implement is
:class:`~tta_agent_coordination.resilience.breaker_state.BreakerStateMachine` (the two
change together); the store that runs them is
:class:`~tta_agent_coordination.redis.breaker_store.RedisBreakerStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from tta_agent_coordination.redis.lua import ScriptSet
from tta_agent_coordination.resilience.breaker_state import CircuitState, Outcome

__all__ = [
    "AcquireReply",
    "BreakerReply",
    "BreakerScriptCall",
    "breaker_acquire",
    "breaker_record",
    "breaker_reset",
]


@dataclass(frozen=True, slots=True)
class BreakerScriptCall:
    """One call of a breaker script: its name, KEYS and ARGV, ready to run."""

    script: str
    keys: tuple[str, ...]
    args: tuple[str | int, ...]

    async def run(self, scripts: ScriptSet) -> list[Any]:
        """Run the call with ``scripts`` (one EVALSHA); the raw reply."""
        return list(await scripts.run(self.script, list(self.keys), list(self.args)))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class BreakerReply(NamedTuple):
    """The breaker's state after a script ran (every breaker script replies with it first)."""

    state: CircuitState
    generation: int
    """Grows on every transition."""
    failures: int
    """Consecutive failures counted while closed."""
    retry_after_ms: int | None
    """Milliseconds (server clock) until an open breaker half-opens; None unless open."""

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> BreakerReply:
        """Parse ``{state, generation, failures, retry_after_ms (-1 unless open), ...}``."""
        state, generation, failures, retry_after_ms = raw[:4]
        retry = int(retry_after_ms)
        return cls(
            CircuitState(_text(state)),
            int(generation),
            int(failures),
            retry if retry >= 0 else None,
        )


class AcquireReply(NamedTuple):
    """The reply of ``breaker_acquire``."""

    breaker: BreakerReply
    """The state after the admission (an open breaker may have half-opened)."""
    allowed: bool
    """Whether the call may run."""
    probe: bool
    """True when the call holds one of the half-open probe slots."""

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> AcquireReply:
        """Parse ``{state, generation, failures, retry_after_ms, allowed 0|1, probe 0|1}``."""
        return cls(BreakerReply.parse(raw), bool(int(raw[4])), bool(int(raw[5])))


def breaker_acquire(
    key: str,
    *,
    half_open_max_calls: int,
    probe_lease_ms: int,
    ttl_ms: int,
) -> BreakerScriptCall:
    """Admit a call, or refuse it; reply: :class:`AcquireReply`.

    An open breaker whose deadline passed half-opens here (lazily, on the next call).

    Args:
        key: the breaker's hash (``KeySpace.breaker_state``).
        half_open_max_calls: most probes running at once while half-open.
        probe_lease_ms: after this, probe slots still held count as abandoned.
        ttl_ms: the hash's expiry, renewed when the state changes.
    """
    return BreakerScriptCall(
        "breaker_acquire",
        (key,),
        (half_open_max_calls, probe_lease_ms, ttl_ms),
    )


def breaker_record(
    key: str,
    *,
    admitted_generation: int | None,
    outcome: Outcome,
    probe: bool,
    failure_threshold: int,
    window_size: int | None,
    failure_rate_threshold: float,
    window_minimum_calls: int,
    success_threshold: int,
    timeout_ms: int,
    timeout_multiplier: float,
    max_timeout_ms: int,
    ttl_ms: int,
) -> BreakerScriptCall:
    """Apply the outcome of a call; reply: :class:`BreakerReply`.

    A stale ``admitted_generation`` changes nothing. An opening stays open
    ``timeout_ms * timeout_multiplier ** (openings in a row - 1)``, at most
    ``max_timeout_ms``; the openings are in a row until the breaker has stayed closed for
    ``max_timeout_ms``.

    Args:
        key: the breaker's hash (``KeySpace.breaker_state``).
        admitted_generation: the generation the call was admitted in; None applies the
            outcome to the current state.
        outcome: how the call ended (``Outcome.TRIP``: the dependency is known down,
            open now).
        probe: whether the call held a half-open probe slot (freed now).
        failure_threshold: consecutive failures that open a closed breaker.
        window_size: calls in the sliding window; None for no window.
        failure_rate_threshold: failure rate over the window that opens the breaker.
        window_minimum_calls: calls the window needs before its rate counts.
        success_threshold: successful probes that close a half-open breaker.
        timeout_ms: how long the first opening in a row stays open.
        timeout_multiplier: how much longer each further opening in a row stays open.
        max_timeout_ms: the longest open time.
        ttl_ms: the hash's expiry, renewed when the state changes.
    """
    return BreakerScriptCall(
        "breaker_record",
        (key,),
        (
            "" if admitted_generation is None else admitted_generation,
            outcome.value,
            int(probe),
            failure_threshold,
            window_size or 0,
            repr(failure_rate_threshold),
            window_minimum_calls,
            success_threshold,
            timeout_ms,
            repr(timeout_multiplier),
            max_timeout_ms,
            ttl_ms,
        ),
    )


def breaker_reset(key: str, *, ttl_ms: int) -> BreakerScriptCall:
    """Close the breaker, clear its counts and its openings in a row; reply: :class:`BreakerReply`.

    The generation still grows, so calls admitted before the reset cannot change the new
    state.

    Args:
        key: the breaker's hash (``KeySpace.breaker_state``).
        ttl_ms: the hash's expiry.
    """
    return BreakerScriptCall("breaker_reset", (key,), (ttl_ms,))
