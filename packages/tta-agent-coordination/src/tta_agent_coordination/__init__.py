"""tta-agent-coordination: reliable coordination for many AI agents over Redis.

The public API, in one place::

    from tta_agent_coordination import AgentId, AgentMessage, RedisMessageCoordinator

Test helpers (FakeRedis-backed) live in :mod:`tta_agent_coordination.testing` and need the
``testing`` extra; importing this package never imports them.
"""

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
)
from tta_agent_coordination.observability.metrics import (
    InMemoryMessageMetrics,
    MessageMetrics,
    NoOpMessageMetrics,
)
from tta_agent_coordination.redis.config import CoordinatorConfig
from tta_agent_coordination.redis.coordinator import QUEUE_FULL, RedisMessageCoordinator
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.registry import RedisAgentRegistry
from tta_agent_coordination.registry_models import (
    AgentCapability,
    AgentRecord,
    CapabilityType,
    RegistryEvent,
    RegistryEventKind,
)
from tta_agent_coordination.resilience import (
    AgentCallGuard,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerRegistry,
    CircuitState,
    InMemoryBreakerStore,
    PassthroughGuard,
    RedisBreakerStore,
    RedisGuard,
    RetryPolicy,
    protect,
)
from tta_agent_coordination.runtime.context import MessageContext
from tta_agent_coordination.runtime.worker import AgentWorker, WorkerState, WorkerStats
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
    "DeadLetter",
    "Durability",
    "FailureType",
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
    "StaleRegistrationError",
    "StoreError",
    "StorePayloadError",
    "StorePermissionError",
    "StoreUnavailableError",
    "WorkerError",
    "WorkerState",
    "WorkerStats",
    "__version__",
    "protect",
]
