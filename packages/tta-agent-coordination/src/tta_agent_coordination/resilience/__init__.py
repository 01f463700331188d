"""Resilience: circuit breakers and retry policies around Redis calls and agent calls.

See ``docs/resilience.md`` for how the breaker works, the shared store and the retry
contract.
"""

from tta_agent_coordination.resilience.circuit_breaker import (
    BreakerListener,
    CircuitBreaker,
    CircuitBreakerMetrics,
    StateTransition,
)
from tta_agent_coordination.resilience.config import (
    CircuitBreakerConfig,
    CircuitBreakerSettings,
)
from tta_agent_coordination.resilience.defaults import default_redis_guard
from tta_agent_coordination.resilience.guard import (
    REDIS_FAILURE_ERRORS,
    AgentCallGuard,
    RedisGuard,
    protect,
    redis_breaker,
    redis_breaker_config,
)
from tta_agent_coordination.resilience.passthrough import PassthroughGuard
from tta_agent_coordination.resilience.registry import CircuitBreakerRegistry
from tta_agent_coordination.resilience.retry import (
    NEVER_RETRY_ERRORS,
    TRANSIENT_ERRORS,
    RetryPolicy,
    is_transient,
)
from tta_agent_coordination.resilience.stores import (
    BreakerSnapshot,
    BreakerStore,
    BreakerStoreUnavailableError,
    CircuitState,
    InMemoryBreakerStore,
    RedisBreakerStore,
)

__all__ = [
    "NEVER_RETRY_ERRORS",
    "REDIS_FAILURE_ERRORS",
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
    "InMemoryBreakerStore",
    "PassthroughGuard",
    "RedisBreakerStore",
    "RedisGuard",
    "RetryPolicy",
    "StateTransition",
    "default_redis_guard",
    "is_transient",
    "protect",
    "redis_breaker",
    "redis_breaker_config",
]
