"""Drop-in names of TTA's original ``agent_orchestration`` coordination code.

A TTA module switches by changing its imports::

    # before
    from src.agent_orchestration import AgentId, AgentMessage, MessagePriority
    from src.agent_orchestration.coordinators import RedisMessageCoordinator
    # after
    from tta_agents.compat import AgentId, AgentMessage, MessagePriority, RedisMessageCoordinator

Everything here runs on the generic core. Where the behaviour must differ (awaited
``register``, an expired lease counts as an attempt, the DLQ is a stream, the audit list is
gone) the compat name raises a clear error or a :class:`CompatWarning`; every change is
listed in ``docs/TTA_MIGRATION_GUIDE.md``.
"""

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    FailureType,
    MessagePriority,
    MessageResult,
    MessageType,
    ReceivedMessage,
)
from tta_agent_coordination.agents import AgentCapability, AgentRecord, CapabilityType
from tta_agent_coordination.errors import (
    AgentRegistryError,
    CircuitBreakerOpenError,
    ConfigurationError,
    MessageCoordinatorError,
)
from tta_agent_coordination.interfaces import AgentRegistry, MessageCoordinator
from tta_agent_coordination.models import MessageSubscription, QueueMessage, RoutingKey
from tta_agents.compat._support import CompatWarning, MustAwait
from tta_agents.compat.admin import poll_queue_metrics_once, recover_all, run_recovery
from tta_agents.compat.breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerMetrics,
    CircuitBreakerMetricsCollector,
    CircuitBreakerRegistry,
    CircuitBreakerState,
    get_circuit_breaker_metrics,
)
from tta_agents.compat.coordinator import DEFAULT_KEY_PREFIX, RedisMessageCoordinator
from tta_agents.compat.metrics import DeliveryStats, MessageMetrics, QueueGauges, RetryStats
from tta_agents.compat.registry import RedisAgentRegistry
from tta_agents.contracts import OrchestrationRequest, OrchestrationResponse
from tta_agents.types import AgentType, create_agent_id

__all__ = [
    "DEFAULT_KEY_PREFIX",
    "AgentCapability",
    "AgentId",
    "AgentMessage",
    "AgentRecord",
    "AgentRegistry",
    "AgentRegistryError",
    "AgentType",
    "CapabilityType",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerMetrics",
    "CircuitBreakerMetricsCollector",
    "CircuitBreakerOpenError",
    "CircuitBreakerRegistry",
    "CircuitBreakerState",
    "CompatWarning",
    "ConfigurationError",
    "DeliveryStats",
    "FailureType",
    "MessageCoordinator",
    "MessageCoordinatorError",
    "MessageMetrics",
    "MessagePriority",
    "MessageResult",
    "MessageSubscription",
    "MessageType",
    "MustAwait",
    "OrchestrationRequest",
    "OrchestrationResponse",
    "QueueGauges",
    "QueueMessage",
    "ReceivedMessage",
    "RedisAgentRegistry",
    "RedisMessageCoordinator",
    "RetryStats",
    "RoutingKey",
    "create_agent_id",
    "get_circuit_breaker_metrics",
    "poll_queue_metrics_once",
    "recover_all",
    "run_recovery",
]
