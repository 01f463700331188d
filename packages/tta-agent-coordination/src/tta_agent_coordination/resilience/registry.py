"""Deprecated: moved to :mod:`tta_agent_coordination.resilience.breaker_registry`.

The alias is removed in 0.3.0.
"""

from __future__ import annotations

import warnings

from tta_agent_coordination.resilience.breaker_registry import CircuitBreakerRegistry

__all__ = ["CircuitBreakerRegistry"]

warnings.warn(
    "tta_agent_coordination.resilience.registry is deprecated; import from "
    "tta_agent_coordination.resilience.breaker_registry (the alias is removed in 0.3.0)",
    DeprecationWarning,
    stacklevel=2,
)
