"""Resilience: circuit breakers and retry policies around Redis calls and agent calls.

Transport-free: nothing here imports :mod:`tta_agent_coordination.redis`, so a breaker
can guard any call (an LLM API, a database). The breaker whose state is shared through
Redis, ``RedisBreakerStore``, lives in :mod:`tta_agent_coordination.redis.breaker_store`;
``tta_agent_coordination.resilience.RedisBreakerStore`` still resolves to it, lazily (on
first access, through the module ``__getattr__``) and with a ``DeprecationWarning``.

See ``docs/resilience.md`` for how the breaker works, the shared store and the retry
contract.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from tta_agent_coordination.resilience.breaker_metrics import (
    BreakerListener,
    CircuitBreakerMetrics,
    StateTransition,
)
from tta_agent_coordination.resilience.breaker_registry import CircuitBreakerRegistry
from tta_agent_coordination.resilience.breaker_state import BreakerSnapshot, CircuitState
from tta_agent_coordination.resilience.breaker_store import (
    BreakerStore,
    BreakerStoreUnavailableError,
    InMemoryBreakerStore,
)
from tta_agent_coordination.resilience.circuit_breaker import CircuitBreaker
from tta_agent_coordination.resilience.config import (
    CircuitBreakerConfig,
    CircuitBreakerSettings,
)
from tta_agent_coordination.resilience.defaults import default_redis_guard
from tta_agent_coordination.resilience.guard import (
    REDIS_BREAKER_DEFAULTS,
    REDIS_FAILURE_ERRORS,
    REDIS_IGNORED_ERRORS,
    AgentCallGuard,
    RedisGuard,
    protect,
    redis_breaker,
    redis_breaker_config,
)
from tta_agent_coordination.resilience.health_check import HealthCheckFn
from tta_agent_coordination.resilience.passthrough import PassthroughGuard
from tta_agent_coordination.resilience.redis_health import redis_health_check
from tta_agent_coordination.resilience.retry import (
    NEVER_RETRY_ERRORS,
    TRANSIENT_ERRORS,
    RetryPolicy,
    is_transient,
)

__all__ = [
    "NEVER_RETRY_ERRORS",
    "REDIS_BREAKER_DEFAULTS",
    "REDIS_FAILURE_ERRORS",
    "REDIS_IGNORED_ERRORS",
    "TRANSIENT_ERRORS",
    "AgentCallGuard",
    "BreakerListener",
    "BreakerSnapshot",
    "BreakerStore",
    "BreakerStoreUnavailableError",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerMetrics",
    "CircuitBreakerRegistry",
    "CircuitBreakerSettings",
    "CircuitState",
    "HealthCheckFn",
    "InMemoryBreakerStore",
    "PassthroughGuard",
    "RedisGuard",
    "RetryPolicy",
    "StateTransition",
    "default_redis_guard",
    "is_transient",
    "protect",
    "redis_breaker",
    "redis_breaker_config",
    "redis_health_check",
]

# Deprecated names that live in a higher layer, resolved on first access only.
_MOVED_UP = {"RedisBreakerStore": "tta_agent_coordination.redis.breaker_store"}


def __getattr__(name: str) -> Any:
    target = _MOVED_UP.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"{__name__}.{name} is deprecated; import from {target} (the alias is removed in 0.3.0)",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(target), name)
