"""``AgentPresence``: how a worker's agent is seen: its registration and its subscriptions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tta_agent_coordination.errors import AgentRegistryError, CoordinationError
from tta_agent_coordination.interfaces import AgentRegistry, MessageCoordinator, Ownership
from tta_agent_coordination.models import AgentId, MessageType

__all__ = ["AgentPresence"]


class AgentPresence:
    """Registers a worker's agent (with heartbeats) and subscribes it; undoes both.

    Args:
        coordinator: where the subscriptions are stored.
        registry: where the agent registers; None: the agent is not registered.
        agent_id: the agent.
        name: the registered name.
        capabilities: the registered capabilities.
        metadata: the registered metadata (the worker's own are added on :meth:`enter`).
        takeover: register even when another live owner holds the agent id.
        subscriptions: message types to subscribe the agent to, one subscription each.
        log: the worker's logger.
    """

    def __init__(
        self,
        coordinator: MessageCoordinator,
        registry: AgentRegistry | None,
        agent_id: AgentId,
        *,
        name: str,
        capabilities: Iterable[Any],
        metadata: Mapping[str, Any],
        takeover: bool,
        subscriptions: Sequence[MessageType],
        log: Any,
    ) -> None:
        self._coordinator = coordinator
        self._registry = registry
        self._agent_id = agent_id
        self._name = name
        self._capabilities = list(capabilities)
        self._metadata = dict(metadata)
        self._takeover = takeover
        self._subscription_types = list(dict.fromkeys(MessageType(t) for t in subscriptions))
        self._subscription_ids: list[str] = []
        self._registered = False
        self._lost = False
        self._started_heartbeats = False
        self._log = log

    @property
    def registered(self) -> bool:
        """Whether the agent is registered by this worker now."""
        return self._registered

    async def enter(self, worker: Mapping[str, Any]) -> None:
        """Register (metadata ``worker`` describes the worker), then subscribe.

        On an error the caller calls :meth:`leave` to undo what was done.

        Raises:
            AgentAlreadyRegisteredError: a live owner holds the agent id.
            CoordinationError: the back-end failed.
        """
        registry = self._registry
        if registry is not None:
            await registry.register_id(
                self._agent_id,
                name=self._name,
                capabilities=self._capabilities,
                metadata={**self._metadata, "worker": dict(worker)},
                takeover=self._takeover,
            )
            self._registered = True
            if not registry.heartbeats_running:
                registry.start_heartbeats()
                self._started_heartbeats = True
        for message_type in self._subscription_types:
            subscription = await self._coordinator.subscribe(self._agent_id, [message_type])
            self._subscription_ids.append(subscription.subscription_id)

    def ownership(self) -> Ownership:
        """Whether the worker may lease: the registry's ``ownership`` of the agent.

        ``LOST`` for good once the registry no longer holds the registration (taken
        over, evicted): it is then no longer this worker's, and :meth:`leave` leaves it
        alone. An unregistered agent is always ``HELD``.
        """
        if self._lost:
            return Ownership.LOST
        registry = self._registry
        if not self._registered or registry is None:
            return Ownership.HELD
        ownership = registry.ownership(self._agent_id)
        if ownership is Ownership.LOST:
            self._registered = False
            self._lost = True
        return ownership

    async def leave(self) -> None:
        """Unsubscribe, deregister, and stop the heartbeats if :meth:`enter` started them.

        Errors are logged, not raised: a stopping worker always gets to deregister.
        """
        for subscription_id in self._subscription_ids:
            try:
                await self._coordinator.unsubscribe(subscription_id)
            except CoordinationError as exc:
                self._log.warning("unsubscribe_failed", error=str(exc))
            except Exception as exc:
                self._log.error("unsubscribe_failed", error=repr(exc), exc_info=exc)
        self._subscription_ids.clear()
        registry = self._registry
        if registry is None or not self._registered:
            return
        self._registered = False
        try:
            await registry.deregister(self._agent_id)
        except AgentRegistryError as exc:
            self._log.warning("deregister_failed", error=str(exc))
        except Exception as exc:
            self._log.error("deregister_failed", error=repr(exc), exc_info=exc)
        if self._started_heartbeats and not registry.held():
            await registry.stop_heartbeats()
