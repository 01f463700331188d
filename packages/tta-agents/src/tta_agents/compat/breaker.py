"""The original circuit-breaker API (``CircuitBreaker(redis, name, config, key_prefix)``).

Each compat breaker wraps a core :class:`CircuitBreaker` whose state lives in Redis
(``RedisBreakerStore``, Lua scripts on the server clock), so every process using one name
shares one breaker. Differences from the original, each in ``docs/TTA_MIGRATION_GUIDE.md``:

- ``failure_threshold`` counts *consecutive* failures (a success while closed resets it);
- the state is read from Redis at every call, so ``initialize()`` has nothing to load;
- ``CircuitBreakerOpenError`` is the core's (a ``CoordinationError``), its message says
  ``is open`` and it carries ``retry_after``; a nested breaker's refusal is not a failure;
- ``success_threshold > half_open_max_calls`` (a breaker that could never close) is a
  ``ConfigurationError``; ``recovery_timeout_seconds`` is kept for reporting only, as before;
- the registry's ``remove`` forgets the breaker in this process (it no longer deletes the
  state other processes share) and ``cleanup_expired_states`` has nothing to do (idle state
  expires in Redis by itself).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ParamSpec, TypeVar

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import CircuitBreakerOpenError, ConfigurationError
from tta_agent_coordination.observability.logging import get_logger
from tta_agents.compat._core import (
    CircuitState,
    CoreCircuitBreaker,
    CoreCircuitBreakerConfig,
    RedisBreakerStore,
)
from tta_agents.compat.coordinator import DEFAULT_KEY_PREFIX

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerMetrics",
    "CircuitBreakerMetricsCollector",
    "CircuitBreakerOpenError",
    "CircuitBreakerRegistry",
    "CircuitBreakerState",
    "get_circuit_breaker_metrics",
]

T = TypeVar("T")
P = ParamSpec("P")

CircuitBreakerState = CircuitState
"""The original name of the breaker states (``closed``, ``open``, ``half_open``)."""

_log = get_logger("tta_agents.compat")

_STATE_TTL_S = 86_400.0
"""How long an idle breaker's shared state is kept (the original's ``SETEX 86400``)."""


@dataclass
class CircuitBreakerConfig:
    """The original breaker settings, with the original defaults.

    Validated when a breaker is built from it (:meth:`to_core`).
    """

    failure_threshold: int = 5
    timeout_seconds: float = 60
    recovery_timeout_seconds: float = 300
    """Reported by ``get_metrics`` only; it had no effect in the original either."""
    half_open_max_calls: int = 3
    success_threshold: int = 2

    def to_core(self) -> CoreCircuitBreakerConfig:
        """The core config: same thresholds; only a nested breaker's refusal is ignored.

        Raises:
            ConfigurationError: a value is out of range, or ``success_threshold`` exceeds
                ``half_open_max_calls``.
        """
        return CoreCircuitBreakerConfig(
            failure_threshold=self.failure_threshold,
            timeout_seconds=float(self.timeout_seconds),
            half_open_max_calls=self.half_open_max_calls,
            success_threshold=self.success_threshold,
            # The original counted every Exception (ValueError included) as a failure.
            ignore=(CircuitBreakerOpenError,),
        )


@dataclass
class CircuitBreakerMetrics:
    """The original per-breaker counters (``get_metrics()`` returns them as a dict)."""

    total_calls: int = 0
    failed_calls: int = 0
    successful_calls: int = 0
    state_changes: int = 0
    last_failure_time: float | None = None
    last_success_time: float | None = None


@dataclass
class CircuitBreakerMetricsCollector:
    """Counts of every compat breaker in this process (the original global collector)."""

    state_transitions: dict[str, int] = field(default_factory=dict[str, int])
    calls_permitted: int = 0
    calls_rejected: int = 0
    successful_calls: int = 0
    failed_calls: int = 0
    last_update: float = field(default_factory=time.time)

    def record_state_transition(
        self, name: str, from_state: CircuitState, to_state: CircuitState
    ) -> None:
        """Count a transition, keyed ``"closed_to_open"`` as in the original."""
        key = f"{from_state.value}_to_{to_state.value}"
        self.state_transitions[key] = self.state_transitions.get(key, 0) + 1
        self.last_update = time.time()
        _log.info("circuit_breaker_transition", breaker=name, transition=key)

    def get_snapshot(self) -> dict[str, Any]:
        """The counters, with ``success_rate`` and ``rejection_rate``."""
        settled = self.successful_calls + self.failed_calls
        asked = self.calls_permitted + self.calls_rejected
        return {
            "state_transitions": dict(self.state_transitions),
            "calls_permitted": self.calls_permitted,
            "calls_rejected": self.calls_rejected,
            "successful_calls": self.successful_calls,
            "failed_calls": self.failed_calls,
            "last_update": self.last_update,
            "success_rate": self.successful_calls / settled if settled else 0.0,
            "rejection_rate": self.calls_rejected / asked if asked else 0.0,
        }

    def reset(self) -> None:
        """Zero every counter."""
        self.state_transitions.clear()
        self.calls_permitted = self.calls_rejected = 0
        self.successful_calls = self.failed_calls = 0
        self.last_update = time.time()


_COLLECTOR = CircuitBreakerMetricsCollector()


def get_circuit_breaker_metrics() -> CircuitBreakerMetricsCollector:
    """The process-wide collector every compat breaker reports to."""
    return _COLLECTOR


class CircuitBreaker:
    """A breaker under the original constructor, with its state shared through Redis.

    Args:
        redis: an asyncio Redis client.
        name: the breaker's name (processes using one name share one breaker).
        config: a compat :class:`CircuitBreakerConfig` (or a core config).
        key_prefix: the key prefix (``"ao"``).

    Raises:
        ConfigurationError: an invalid config.
    """

    def __init__(
        self,
        redis: RedisClient,
        name: str,
        config: CircuitBreakerConfig | CoreCircuitBreakerConfig | None = None,
        key_prefix: str = DEFAULT_KEY_PREFIX,
    ) -> None:
        self._config = config if config is not None else CircuitBreakerConfig()
        core_config = (
            self._config.to_core()
            if isinstance(self._config, CircuitBreakerConfig)
            else self._config
        )
        store = RedisBreakerStore(
            redis,
            key_prefix.rstrip(":"),
            state_ttl_s=max(_STATE_TTL_S, 2 * core_config.longest_open_s),
        )
        self.breaker = CoreCircuitBreaker(name, core_config, store)
        """The core breaker (pass it to native APIs)."""
        self._last_failure_time: float | None = None
        self._last_success_time: float | None = None
        self.breaker.add_listener(self._on_transition)

    @property
    def name(self) -> str:
        """The breaker's name."""
        return self.breaker.name

    @property
    def config(self) -> CircuitBreakerConfig | CoreCircuitBreakerConfig:
        """The config this breaker was built from."""
        return self._config

    @property
    def state(self) -> CircuitState:
        """The state last seen (refreshed from Redis by every call)."""
        return self.breaker.state

    async def initialize(self) -> None:
        """Nothing to load: the state is read from Redis at every call (kept for the API)."""

    async def call(self, func: Callable[[], Awaitable[T]], correlation_id: str | None = None) -> T:
        """Run ``func()`` through the breaker and return its result.

        Raises:
            CircuitBreakerOpenError: the breaker is open, or its half-open probes are taken.
            Exception: whatever ``func`` raised (re-raised unchanged).
        """
        cid = correlation_id or uuid.uuid4().hex
        admitted = False

        async def run() -> T:
            nonlocal admitted
            admitted = True
            return await func()

        try:
            result = await self.breaker.call(run)
        except CircuitBreakerOpenError:
            if admitted:  # a nested breaker refused: the call ran
                _COLLECTOR.calls_permitted += 1
            else:
                _COLLECTOR.calls_rejected += 1
                _log.warning("circuit_breaker_rejected", breaker=self.name, correlation_id=cid)
            raise
        except Exception as exc:
            self._last_failure_time = time.time()
            _COLLECTOR.calls_permitted += 1
            _COLLECTOR.failed_calls += 1
            _log.debug(
                "circuit_breaker_failed_call",
                breaker=self.name,
                correlation_id=cid,
                error=type(exc).__name__,
            )
            raise
        self._last_success_time = time.time()
        _COLLECTOR.calls_permitted += 1
        _COLLECTOR.successful_calls += 1
        return result

    async def execute(
        self, func: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``func(*args, **kwargs)`` through the breaker (see :meth:`call`)."""
        return await self.call(lambda: func(*args, **kwargs))

    async def get_state(self) -> CircuitState:
        """The state last seen."""
        return self.breaker.state

    async def is_call_permitted(self) -> bool:
        """Whether a call made now would be admitted, as far as this process last saw."""
        if self.breaker.state is CircuitState.OPEN:
            return (self.breaker.retry_after or 0.0) <= 0.0
        return True

    async def reset(self) -> None:
        """Close the breaker and clear its failure count, here and in Redis."""
        await self.breaker.areset()

    def legacy_metrics(self) -> CircuitBreakerMetrics:
        """The original counters, from the core breaker's metrics."""
        m = self.breaker.metrics
        return CircuitBreakerMetrics(
            # The original counted refused calls in total_calls; only calls that ran count.
            total_calls=m.calls,
            failed_calls=m.failures,
            successful_calls=m.successes + m.ignored,
            state_changes=m.transition_count,
            last_failure_time=self._last_failure_time,
            last_success_time=self._last_success_time,
        )

    async def get_metrics(self) -> dict[str, Any]:
        """The original metrics dict (name, state, counters and config)."""
        legacy = self.legacy_metrics()
        config = (
            asdict(self._config)
            if isinstance(self._config, CircuitBreakerConfig)
            else self._config.model_dump(include={"failure_threshold", "timeout_seconds"})
        )
        return {
            "name": self.name,
            "state": self.breaker.state.value,
            "failure_count": self.breaker.failure_count,
            "rejected_calls": self.breaker.metrics.rejections,
            **asdict(legacy),
            "config": config,
        }

    async def aclose(self) -> None:
        """Wait for the breaker's background writes to Redis."""
        await self.breaker.aclose()

    def _on_transition(self, name: str, old: CircuitState, new: CircuitState) -> None:
        _COLLECTOR.record_state_transition(name, old, new)


class CircuitBreakerRegistry:
    """Named compat breakers sharing one Redis and prefix (the original registry's API).

    Args:
        redis: an asyncio Redis client.
        key_prefix: the key prefix (``"ao"``).
    """

    def __init__(self, redis: RedisClient, key_prefix: str = DEFAULT_KEY_PREFIX) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._breakers: dict[str, CircuitBreaker] = {}

    async def get_or_create(
        self, name: str, config: CircuitBreakerConfig | None = None
    ) -> CircuitBreaker:
        """The breaker ``name``, created with ``config`` (defaults) if new.

        Raises:
            ConfigurationError: ``name`` exists with a different config (the original
                silently ignored it), or the config is invalid.
        """
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(self._redis, name, config, self._prefix)
            self._breakers[name] = breaker
        elif config is not None and config != breaker.config:
            raise ConfigurationError(
                f"circuit breaker {name!r} already exists with a different config; "
                "pass config=None to use it, or remove() it first"
            )
        return breaker

    async def get(self, name: str) -> CircuitBreaker | None:
        """The breaker ``name``, or None."""
        return self._breakers.get(name)

    async def remove(self, name: str) -> bool:
        """Forget the breaker in this process; False if unknown (shared state is kept)."""
        breaker = self._breakers.pop(name, None)
        if breaker is None:
            return False
        await breaker.aclose()
        return True

    async def list_names(self) -> list[str]:
        """The names of this registry's breakers, sorted."""
        return sorted(self._breakers)

    async def get_all_metrics(self) -> dict[str, dict[str, Any]]:
        """``{name: get_metrics()}`` of every breaker."""
        return {name: await b.get_metrics() for name, b in sorted(self._breakers.items())}

    async def get_all_states(self) -> dict[str, CircuitState]:
        """``{name: state}`` of every breaker."""
        return {name: b.state for name, b in sorted(self._breakers.items())}

    async def reset_all(self) -> None:
        """Reset every breaker (here and in Redis)."""
        for breaker in self._breakers.values():
            await breaker.reset()

    async def get_open_circuit_breakers(self) -> list[str]:
        """The names of the breakers last seen open."""
        return [n for n, b in sorted(self._breakers.items()) if b.state is CircuitState.OPEN]

    async def cleanup_expired_states(self) -> int:
        """0: idle breaker state expires in Redis by itself (kept for the API)."""
        return 0

    async def get_registry_stats(self) -> dict[str, Any]:
        """``{"total_circuit_breakers", "state_counts", "open_circuit_breakers"}``."""
        counts = {state.value: 0 for state in CircuitState}
        for breaker in self._breakers.values():
            counts[breaker.state.value] += 1
        return {
            "total_circuit_breakers": len(self._breakers),
            "state_counts": counts,
            "open_circuit_breakers": await self.get_open_circuit_breakers(),
        }

    async def aclose(self) -> None:
        """Wait for every breaker's background writes."""
        for breaker in self._breakers.values():
            await breaker.aclose()
