"""The core's circuit-breaker names, from their public homes.

The breaker classes are public in ``tta_agent_coordination.resilience`` (transport-free);
the breaker store whose state is shared through Redis lives in
``tta_agent_coordination.redis.breaker_store``, the one transport module ``tta_agents``
may import (the import-linter contract ``tta-agents-on-public-api`` names it).
"""

from __future__ import annotations

from tta_agent_coordination.redis.breaker_store import RedisBreakerStore
from tta_agent_coordination.resilience import CircuitBreaker as CoreCircuitBreaker
from tta_agent_coordination.resilience import CircuitBreakerConfig as CoreCircuitBreakerConfig
from tta_agent_coordination.resilience import CircuitState

__all__ = ["CircuitState", "CoreCircuitBreaker", "CoreCircuitBreakerConfig", "RedisBreakerStore"]
