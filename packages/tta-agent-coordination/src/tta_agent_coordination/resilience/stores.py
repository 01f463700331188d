"""Deprecated: the breaker stores moved (the alias is removed in 0.3.0).

* ``CircuitState``, ``Outcome``, ``BreakerSnapshot``, ``Admission``:
  :mod:`tta_agent_coordination.resilience.breaker_state`
* ``BreakerStore``, ``BreakerStoreUnavailableError``, ``InMemoryBreakerStore``:
  :mod:`tta_agent_coordination.resilience.breaker_store`
* ``RedisBreakerStore``: :mod:`tta_agent_coordination.redis.breaker_store`

``resilience`` is a lower layer than ``redis``, so ``RedisBreakerStore`` is reached
lazily, through the module ``__getattr__``, on first access: importing this shim never
imports ``tta_agent_coordination.redis`` (and ``RedisBreakerStore`` is not in ``__all__``,
so a star import does not either).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from tta_agent_coordination.resilience.breaker_state import (
    CLOSED_SNAPSHOT as CLOSED_SNAPSHOT,  # not in __all__ before either
)
from tta_agent_coordination.resilience.breaker_state import (
    Admission,
    BreakerSnapshot,
    CircuitState,
    Outcome,
)
from tta_agent_coordination.resilience.breaker_store import (
    BreakerStore,
    BreakerStoreUnavailableError,
    InMemoryBreakerStore,
)

__all__ = [
    "Admission",
    "BreakerSnapshot",
    "BreakerStore",
    "BreakerStoreUnavailableError",
    "CircuitState",
    "InMemoryBreakerStore",
    "Outcome",
]

warnings.warn(
    "tta_agent_coordination.resilience.stores is deprecated; import from "
    "tta_agent_coordination.resilience.breaker_state, "
    "tta_agent_coordination.resilience.breaker_store or "
    "tta_agent_coordination.redis.breaker_store (the alias is removed in 0.3.0)",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    if name == "RedisBreakerStore":
        module = importlib.import_module("tta_agent_coordination.redis.breaker_store")
        return module.RedisBreakerStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
