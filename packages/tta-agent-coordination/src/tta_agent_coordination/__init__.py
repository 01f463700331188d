"""tta-agent-coordination: reliable coordination for many AI agents over Redis.

The everyday names are here::

    from tta_agent_coordination import AgentId, AgentMessage, AgentWorker, RedisMessageCoordinator

Everything else lives in the module of its layer (see ``docs/architecture.md``):
:mod:`~tta_agent_coordination.errors`, :mod:`~tta_agent_coordination.models`,
:mod:`~tta_agent_coordination.agents` (registry records), :mod:`~tta_agent_coordination.replies`,
:mod:`~tta_agent_coordination.interfaces`, :mod:`~tta_agent_coordination.store`,
:mod:`~tta_agent_coordination.resilience`, :mod:`~tta_agent_coordination.observability`,
:mod:`~tta_agent_coordination.redis` (the transport), :mod:`~tta_agent_coordination.runtime`,
:mod:`~tta_agent_coordination.plugins`, :mod:`~tta_agent_coordination.settings`. The names
that were exported here before 0.2 still resolve, with a ``DeprecationWarning`` that names
their home (the aliases are removed in 0.3.0).

Importing this package pulls no optional dependency and no transport: the Redis and runtime
names load on first access, so that importing a lower layer such as
:mod:`tta_agent_coordination.resilience` never loads the Redis layer. Test helpers
(FakeRedis-backed) live in :mod:`tta_agent_coordination.testing` (the ``testing`` extra).
"""

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from tta_agent_coordination.errors import CoordinationError, PermanentError
from tta_agent_coordination.features import features
from tta_agent_coordination.models import (
    AgentId,
    AgentMessage,
    FailureType,
    MessagePriority,
    MessageResult,
    MessageType,
    ReceivedMessage,
    SendStatus,
)

if TYPE_CHECKING:  # resolved lazily at run time (see _LAZY and _MOVED)
    from tta_agent_coordination.agents import (
        AgentCapability as AgentCapability,
    )
    from tta_agent_coordination.agents import (
        AgentRecord as AgentRecord,
    )
    from tta_agent_coordination.agents import (
        CapabilityType as CapabilityType,
    )
    from tta_agent_coordination.agents import (
        RegistryEvent as RegistryEvent,
    )
    from tta_agent_coordination.agents import (
        RegistryEventKind as RegistryEventKind,
    )
    from tta_agent_coordination.errors import (
        AgentAlreadyRegisteredError as AgentAlreadyRegisteredError,
    )
    from tta_agent_coordination.errors import (
        AgentRegistryError as AgentRegistryError,
    )
    from tta_agent_coordination.errors import (
        CircuitBreakerOpenError as CircuitBreakerOpenError,
    )
    from tta_agent_coordination.errors import (
        ConfigurationError as ConfigurationError,
    )
    from tta_agent_coordination.errors import (
        CoordinatorUnavailableError as CoordinatorUnavailableError,
    )
    from tta_agent_coordination.errors import (
        InvalidAgentIdError as InvalidAgentIdError,
    )
    from tta_agent_coordination.errors import (
        MessageCoordinatorError as MessageCoordinatorError,
    )
    from tta_agent_coordination.errors import (
        MessageValidationError as MessageValidationError,
    )
    from tta_agent_coordination.errors import (
        PayloadTooLargeError as PayloadTooLargeError,
    )
    from tta_agent_coordination.errors import (
        RegistrationExpiredError as RegistrationExpiredError,
    )
    from tta_agent_coordination.errors import (
        RegistrationValidationError as RegistrationValidationError,
    )
    from tta_agent_coordination.errors import (
        RegistryUnavailableError as RegistryUnavailableError,
    )
    from tta_agent_coordination.errors import (
        RemoteHandlerError as RemoteHandlerError,
    )
    from tta_agent_coordination.errors import (
        RequestError as RequestError,
    )
    from tta_agent_coordination.errors import (
        RequestNotDeliveredError as RequestNotDeliveredError,
    )
    from tta_agent_coordination.errors import (
        RequestTimeoutError as RequestTimeoutError,
    )
    from tta_agent_coordination.errors import (
        StaleRegistrationError as StaleRegistrationError,
    )
    from tta_agent_coordination.errors import (
        WorkerError as WorkerError,
    )
    from tta_agent_coordination.features import (
        Feature as Feature,
    )
    from tta_agent_coordination.interactions import (
        AgentMessaging as AgentMessaging,
    )
    from tta_agent_coordination.interactions import (
        AgentMessagingError as AgentMessagingError,
    )
    from tta_agent_coordination.interfaces import (
        AgentRegistry as AgentRegistry,
    )
    from tta_agent_coordination.interfaces import (
        CallGuard as CallGuard,
    )
    from tta_agent_coordination.interfaces import (
        MessageCoordinator as MessageCoordinator,
    )
    from tta_agent_coordination.interfaces import (
        RegistrableAgent as RegistrableAgent,
    )
    from tta_agent_coordination.models import (
        DEFAULT_INSTANCE as DEFAULT_INSTANCE,
    )
    from tta_agent_coordination.models import (
        DeadLetter as DeadLetter,
    )
    from tta_agent_coordination.models import (
        MessageSubscription as MessageSubscription,
    )
    from tta_agent_coordination.models import (
        QueueMessage as QueueMessage,
    )
    from tta_agent_coordination.models import (
        QueueStats as QueueStats,
    )
    from tta_agent_coordination.models import (
        RoutingKey as RoutingKey,
    )
    from tta_agent_coordination.observability.metrics import (
        CounterMetricsBase as CounterMetricsBase,
    )
    from tta_agent_coordination.observability.metrics import (
        InMemoryMessageMetrics as InMemoryMessageMetrics,
    )
    from tta_agent_coordination.observability.metrics import (
        MessageMetrics as MessageMetrics,
    )
    from tta_agent_coordination.observability.metrics import (
        NoOpMessageMetrics as NoOpMessageMetrics,
    )
    from tta_agent_coordination.plugins import (
        PluginError as PluginError,
    )
    from tta_agent_coordination.plugins import (
        load_metrics as load_metrics,
    )
    from tta_agent_coordination.plugins import (
        load_store as load_store,
    )
    from tta_agent_coordination.redis.agent_registry import (
        RedisAgentRegistry as RedisAgentRegistry,
    )
    from tta_agent_coordination.redis.breaker_store import (
        RedisBreakerStore as RedisBreakerStore,
    )
    from tta_agent_coordination.redis.config import (
        CoordinatorConfig as CoordinatorConfig,
    )
    from tta_agent_coordination.redis.coordinator import (
        QUEUE_FULL as QUEUE_FULL,
    )
    from tta_agent_coordination.redis.coordinator import (
        RedisMessageCoordinator as RedisMessageCoordinator,
    )
    from tta_agent_coordination.redis.keys import (
        KeySpace as KeySpace,
    )
    from tta_agent_coordination.resilience import (
        AgentCallGuard as AgentCallGuard,
    )
    from tta_agent_coordination.resilience import (
        CircuitBreaker as CircuitBreaker,
    )
    from tta_agent_coordination.resilience import (
        CircuitBreakerConfig as CircuitBreakerConfig,
    )
    from tta_agent_coordination.resilience import (
        CircuitBreakerRegistry as CircuitBreakerRegistry,
    )
    from tta_agent_coordination.resilience import (
        CircuitState as CircuitState,
    )
    from tta_agent_coordination.resilience import (
        InMemoryBreakerStore as InMemoryBreakerStore,
    )
    from tta_agent_coordination.resilience import (
        PassthroughGuard as PassthroughGuard,
    )
    from tta_agent_coordination.resilience import (
        RedisGuard as RedisGuard,
    )
    from tta_agent_coordination.resilience import (
        RetryPolicy as RetryPolicy,
    )
    from tta_agent_coordination.resilience import (
        protect as protect,
    )
    from tta_agent_coordination.runtime.context import (
        MessageContext as MessageContext,
    )
    from tta_agent_coordination.runtime.worker import (
        AgentWorker as AgentWorker,
    )
    from tta_agent_coordination.runtime.worker import (
        WorkerState as WorkerState,
    )
    from tta_agent_coordination.runtime.worker import (
        WorkerStats as WorkerStats,
    )
    from tta_agent_coordination.settings import (
        CoordinationSettings as CoordinationSettings,
    )
    from tta_agent_coordination.store import (
        AgentEvent as AgentEvent,
    )
    from tta_agent_coordination.store import (
        Durability as Durability,
    )
    from tta_agent_coordination.store import (
        LifecycleKind as LifecycleKind,
    )
    from tta_agent_coordination.store import (
        MessageEvent as MessageEvent,
    )
    from tta_agent_coordination.store import (
        MessageStatus as MessageStatus,
    )
    from tta_agent_coordination.store import (
        MessageStore as MessageStore,
    )
    from tta_agent_coordination.store import (
        PendingMessage as PendingMessage,
    )
    from tta_agent_coordination.store import (
        StoreError as StoreError,
    )
    from tta_agent_coordination.store import (
        StorePayloadError as StorePayloadError,
    )
    from tta_agent_coordination.store import (
        StorePermissionError as StorePermissionError,
    )
    from tta_agent_coordination.store import (
        StoreUnavailableError as StoreUnavailableError,
    )

__version__ = "0.1.0"

__all__ = [
    "AgentId",
    "AgentMessage",
    "AgentMessaging",
    "AgentMessagingError",
    "AgentWorker",
    "CoordinationError",
    "CoordinationSettings",
    "FailureType",
    "MessageContext",
    "MessagePriority",
    "MessageResult",
    "MessageType",
    "PermanentError",
    "ReceivedMessage",
    "RedisAgentRegistry",
    "RedisMessageCoordinator",
    "SendStatus",
    "__version__",
    "features",
]

# name -> (module, attribute or None for the module itself, extra that provides it)
_LAZY: dict[str, tuple[str, str | None, str | None]] = {
    # The transport and the runtime, loaded on first access (see the module docstring).
    "AgentMessaging": ("tta_agent_coordination.interactions", "AgentMessaging", None),
    "AgentMessagingError": ("tta_agent_coordination.interactions", "AgentMessagingError", None),
    "AgentWorker": ("tta_agent_coordination.runtime.worker", "AgentWorker", None),
    "CoordinationSettings": ("tta_agent_coordination.settings", "CoordinationSettings", None),
    "MessageContext": ("tta_agent_coordination.runtime.context", "MessageContext", None),
    "RedisAgentRegistry": (
        "tta_agent_coordination.redis.agent_registry",
        "RedisAgentRegistry",
        None,
    ),
    "RedisMessageCoordinator": (
        "tta_agent_coordination.redis.coordinator",
        "RedisMessageCoordinator",
        None,
    ),
    "cli": ("tta_agent_coordination.cli", None, None),
    "testing": ("tta_agent_coordination.testing", None, "testing"),
}

# Deprecated aliases: name -> the module that exports it now (removed in 0.3.0).
_MOVED: dict[str, str] = {
    **dict.fromkeys(
        ("AgentCapability", "AgentRecord", "CapabilityType", "RegistryEvent", "RegistryEventKind"),
        "tta_agent_coordination.agents",
    ),
    **dict.fromkeys(
        (
            "AgentAlreadyRegisteredError",
            "AgentRegistryError",
            "CircuitBreakerOpenError",
            "ConfigurationError",
            "CoordinatorUnavailableError",
            "InvalidAgentIdError",
            "MessageCoordinatorError",
            "MessageValidationError",
            "PayloadTooLargeError",
            "RegistrationExpiredError",
            "RegistrationValidationError",
            "RegistryUnavailableError",
            "RemoteHandlerError",
            "RequestError",
            "RequestNotDeliveredError",
            "RequestTimeoutError",
            "StaleRegistrationError",
            "WorkerError",
        ),
        "tta_agent_coordination.errors",
    ),
    **dict.fromkeys(("Feature",), "tta_agent_coordination.features"),
    **dict.fromkeys(
        ("AgentRegistry", "CallGuard", "MessageCoordinator", "RegistrableAgent"),
        "tta_agent_coordination.interfaces",
    ),
    **dict.fromkeys(
        (
            "DEFAULT_INSTANCE",
            "DeadLetter",
            "MessageSubscription",
            "QueueMessage",
            "QueueStats",
            "RoutingKey",
        ),
        "tta_agent_coordination.models",
    ),
    **dict.fromkeys(
        ("CounterMetricsBase", "InMemoryMessageMetrics", "MessageMetrics", "NoOpMessageMetrics"),
        "tta_agent_coordination.observability.metrics",
    ),
    **dict.fromkeys(
        ("PrometheusMetrics", "serve_metrics"), "tta_agent_coordination.observability.prometheus"
    ),
    **dict.fromkeys(
        ("PluginError", "load_metrics", "load_store"), "tta_agent_coordination.plugins"
    ),
    **dict.fromkeys(("RedisBreakerStore",), "tta_agent_coordination.redis.breaker_store"),
    **dict.fromkeys(("CoordinatorConfig",), "tta_agent_coordination.redis.config"),
    **dict.fromkeys(("QUEUE_FULL",), "tta_agent_coordination.redis.coordinator"),
    **dict.fromkeys(("KeySpace",), "tta_agent_coordination.redis.keys"),
    **dict.fromkeys(
        (
            "AgentCallGuard",
            "CircuitBreaker",
            "CircuitBreakerConfig",
            "CircuitBreakerRegistry",
            "CircuitState",
            "InMemoryBreakerStore",
            "PassthroughGuard",
            "RedisGuard",
            "RetryPolicy",
            "protect",
        ),
        "tta_agent_coordination.resilience",
    ),
    **dict.fromkeys(("WorkerState", "WorkerStats"), "tta_agent_coordination.runtime.worker"),
    **dict.fromkeys(
        (
            "AgentEvent",
            "Durability",
            "LifecycleKind",
            "MessageEvent",
            "MessageStatus",
            "MessageStore",
            "PendingMessage",
            "StoreError",
            "StorePayloadError",
            "StorePermissionError",
            "StoreUnavailableError",
        ),
        "tta_agent_coordination.store",
    ),
}

_EXTRAS = {"PrometheusMetrics": "prometheus", "serve_metrics": "prometheus"}


def _load(module_name: str, name: str, extra: str | None) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        hint = f": install tta-agent-coordination[{extra}]" if extra else ""
        raise ImportError(f"{name} needs {exc.name!r}, which is not installed{hint}") from exc


def __getattr__(name: str) -> Any:
    """Load a lazy name on first access (PEP 562); warn for a name that moved."""
    if name in _LAZY:
        module_name, attribute, extra = _LAZY[name]
        module = _load(module_name, name, extra)
        value = module if attribute is None else getattr(module, attribute)
        globals()[name] = value  # later accesses skip __getattr__
        return value
    if name in _MOVED:
        home = _MOVED[name]
        warnings.warn(
            f"tta_agent_coordination.{name} is deprecated; import it from {home} "
            "(the alias is removed in 0.3.0)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_load(home, name, _EXTRAS.get(name)), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
