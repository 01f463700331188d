"""The core's circuit-breaker names, reached through its public top-level aliases.

``tta_agents`` may import only the core's public API (an import-linter contract), and the
breaker classes live in ``tta_agent_coordination.resilience`` (and the Redis store in
``tta_agent_coordination.redis``), which that contract forbids. The top-level package still
exports them as deprecated aliases (until 0.3.0); this module is the one place that reads
them, silencing that deprecation, so that a proper public home needs one change here.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from tta_agent_coordination import (
        CircuitBreaker as CoreCircuitBreaker,
    )
    from tta_agent_coordination import (
        CircuitBreakerConfig as CoreCircuitBreakerConfig,
    )
    from tta_agent_coordination import (
        CircuitState,
        RedisBreakerStore,
    )

__all__ = ["CircuitState", "CoreCircuitBreaker", "CoreCircuitBreakerConfig", "RedisBreakerStore"]
