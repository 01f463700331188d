"""tta-agent-coordination: reliable coordination for many AI agents over Redis.

The public API, in one place::

    from tta_agent_coordination import AgentId, AgentMessage, RedisMessageCoordinator

Test helpers (FakeRedis-backed) live in :mod:`tta_agent_coordination.testing` and need the
``testing`` extra; importing this package never imports them.

Optional parts are loaded on first use, never at import (``import tta_agent_coordination``
pulls no optional dependency): ``PrometheusMetrics`` and ``serve_metrics`` (the
``prometheus`` extra) and the ``cli`` and ``testing`` sub-packages. They are not in
``__all__``, so that ``from tta_agent_coordination import *`` works without the extras.
The transport and runtime names (``RedisMessageCoordinator``, ``AgentWorker``, ...) are in
``__all__`` but also load on first access, so that importing a lower layer such as
:mod:`tta_agent_coordination.resilience` never loads the Redis layer.
:func:`features` says which optional parts are installed; :func:`load_store` and
:func:`load_metrics` create plugins (see ``docs/plugins.md``).
"""

import importlib
from typing import TYPE_CHECKING, Any

from tta_agent_coordination.agents import (
    AgentCapability,
    AgentRecord,
    CapabilityType,
    RegistryEvent,
    RegistryEventKind,
)
from tta_agent_coordination.errors import (
    AgentAlreadyRegisteredError,
    AgentRegistryError,
    CircuitBreakerOpenError,
    ConfigurationError,
    CoordinationError,
    CoordinatorUnavailableError,
    InvalidAgentIdError,
    MessageCoordinatorError,
    MessageValidationError,
    PayloadTooLargeError,
    PermanentError,
    RegistrationExpiredError,
    RegistrationValidationError,
    RegistryUnavailableError,
    RemoteHandlerError,
    RequestError,
    RequestNotDeliveredError,
    RequestTimeoutError,
    StaleRegistrationError,
    WorkerError,
)
from tta_agent_coordination.features import Feature, features
from tta_agent_coordination.interfaces import (
    AgentRegistry,
    CallGuard,
    MessageCoordinator,
    RegistrableAgent,
)
from tta_agent_coordination.models import (
    DEFAULT_INSTANCE,
    AgentId,
    AgentMessage,
    DeadLetter,
    FailureType,
    MessagePriority,
    MessageResult,
    MessageSubscription,
    MessageType,
    QueueMessage,
    QueueStats,
    ReceivedMessage,
    RoutingKey,
    SendStatus,
)
from tta_agent_coordination.observability.metrics import (
    CounterMetricsBase,
    InMemoryMessageMetrics,
    MessageMetrics,
    NoOpMessageMetrics,
)
from tta_agent_coordination.plugins import PluginError, load_metrics, load_store
from tta_agent_coordination.resilience import (
    AgentCallGuard,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerRegistry,
    CircuitState,
    InMemoryBreakerStore,
    PassthroughGuard,
    RedisGuard,
    RetryPolicy,
    protect,
)
from tta_agent_coordination.store import (
    AgentEvent,
    Durability,
    LifecycleKind,
    MessageEvent,
    MessageStatus,
    MessageStore,
    PendingMessage,
    StoreError,
    StorePayloadError,
    StorePermissionError,
    StoreUnavailableError,
)

if TYPE_CHECKING:  # resolved lazily at run time (see _LAZY)
    from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
    from tta_agent_coordination.redis.breaker_store import RedisBreakerStore
    from tta_agent_coordination.redis.config import CoordinatorConfig
    from tta_agent_coordination.redis.coordinator import QUEUE_FULL, RedisMessageCoordinator
    from tta_agent_coordination.redis.keys import KeySpace
    from tta_agent_coordination.runtime.context import MessageContext
    from tta_agent_coordination.runtime.worker import AgentWorker, WorkerState, WorkerStats

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_INSTANCE",
    "QUEUE_FULL",
    "AgentAlreadyRegisteredError",
    "AgentCallGuard",
    "AgentCapability",
    "AgentEvent",
    "AgentId",
    "AgentMessage",
    "AgentRecord",
    "AgentRegistry",
    "AgentRegistryError",
    "AgentWorker",
    "CallGuard",
    "CapabilityType",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerOpenError",
    "CircuitBreakerRegistry",
    "CircuitState",
    "ConfigurationError",
    "CoordinationError",
    "CoordinatorConfig",
    "CoordinatorUnavailableError",
    "CounterMetricsBase",
    "DeadLetter",
    "Durability",
    "FailureType",
    "Feature",
    "InMemoryBreakerStore",
    "InMemoryMessageMetrics",
    "InvalidAgentIdError",
    "KeySpace",
    "LifecycleKind",
    "MessageContext",
    "MessageCoordinator",
    "MessageCoordinatorError",
    "MessageEvent",
    "MessageMetrics",
    "MessagePriority",
    "MessageResult",
    "MessageStatus",
    "MessageStore",
    "MessageSubscription",
    "MessageType",
    "MessageValidationError",
    "NoOpMessageMetrics",
    "PassthroughGuard",
    "PayloadTooLargeError",
    "PendingMessage",
    "PermanentError",
    "PluginError",
    "QueueMessage",
    "QueueStats",
    "ReceivedMessage",
    "RedisAgentRegistry",
    "RedisBreakerStore",
    "RedisGuard",
    "RedisMessageCoordinator",
    "RegistrableAgent",
    "RegistrationExpiredError",
    "RegistrationValidationError",
    "RegistryEvent",
    "RegistryEventKind",
    "RegistryUnavailableError",
    "RemoteHandlerError",
    "RequestError",
    "RequestNotDeliveredError",
    "RequestTimeoutError",
    "RetryPolicy",
    "RoutingKey",
    "SendStatus",
    "StaleRegistrationError",
    "StoreError",
    "StorePayloadError",
    "StorePermissionError",
    "StoreUnavailableError",
    "WorkerError",
    "WorkerState",
    "WorkerStats",
    "__version__",
    "features",
    "load_metrics",
    "load_store",
    "protect",
]

# name -> (module, attribute or None for the module itself, extra that provides it)
_LAZY: dict[str, tuple[str, str | None, str | None]] = {
    # Transport and runtime (in __all__), loaded on first access so that importing a lower
    # layer (tta_agent_coordination.resilience, .store, .models) never loads the Redis layer.
    **{
        name: (module, name, None)
        for module, names in (
            ("tta_agent_coordination.redis.breaker_store", ("RedisBreakerStore",)),
            ("tta_agent_coordination.redis.config", ("CoordinatorConfig",)),
            ("tta_agent_coordination.redis.coordinator", ("QUEUE_FULL", "RedisMessageCoordinator")),
            ("tta_agent_coordination.redis.keys", ("KeySpace",)),
            ("tta_agent_coordination.redis.agent_registry", ("RedisAgentRegistry",)),
            ("tta_agent_coordination.runtime.context", ("MessageContext",)),
            (
                "tta_agent_coordination.runtime.worker",
                ("AgentWorker", "WorkerState", "WorkerStats"),
            ),
        )
        for name in names
    },
    "PrometheusMetrics": (
        "tta_agent_coordination.observability.prometheus",
        "PrometheusMetrics",
        "prometheus",
    ),
    "serve_metrics": (
        "tta_agent_coordination.observability.prometheus",
        "serve_metrics",
        "prometheus",
    ),
    "cli": ("tta_agent_coordination.cli", None, None),
    "testing": ("tta_agent_coordination.testing", None, "testing"),
}


def __getattr__(name: str) -> Any:
    """Import an optional part on first access (PEP 562), with a hint when it is missing."""
    try:
        module_name, attribute, extra = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        hint = f": install tta-agent-coordination[{extra}]" if extra else ""
        raise ImportError(f"{name} needs {exc.name!r}, which is not installed{hint}") from exc
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
