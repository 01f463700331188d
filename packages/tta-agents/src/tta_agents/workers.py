"""Typed ``AgentWorker`` builders for TTA's three agents, around their existing adapters.

Each builder returns a core :class:`~tta_agent_coordination.AgentWorker` whose ``REQUEST``
handler validates the payload into the agent's contract (:mod:`tta_agents.contracts`),
calls the adapter within the agent's original timeout (IPA 10 s, WBA 15 s, NGA 20 s), and
replies with the validated response::

    worker = ipa_worker(coordinator, registry, "ipa-1", IPAAdapter())
    async with worker:
        reply = await coordinator.request(sender, ipa(), {"text": "go north"})

The worker consumes its own queue and its type's queue, so ``ipa()`` (type-wide) reaches
any live input processor. TTA's adapters (``IPAAdapter``, ``WBAAdapter``, ``NGAAdapter``)
already satisfy the protocols below.

**The fallback switch** (``fallback_to_mock``, on by default as in TTA) is handed to the
adapter (its own ``fallback_to_mock``), and the worker applies it too: when the adapter
raises, runs past its timeout or returns something that is not its contract, the worker
replies with the original's degraded answer, marked ``source="mock_fallback"`` (and the
reason in ``fallback_reason``). With the switch off, the failure is the message's: a
timeout or an adapter error is retried with backoff and dead-lettered once retries run
out (the requester gets ``RemoteHandlerError``); an invalid adapter answer fails it at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

from tta_agent_coordination import AgentId, AgentWorker, MessageContext, MessageType, PermanentError
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.interfaces import AgentRegistry, MessageCoordinator
from tta_agent_coordination.observability.logging import get_logger
from tta_agents.contracts import (
    MOCK_FALLBACK_SOURCE,
    IPARequest,
    IPAResponse,
    NGARequest,
    NGAResponse,
    WBARequest,
    WBAResponse,
)
from tta_agents.types import AgentType, create_agent_id

__all__ = [
    "AGENT_TIMEOUTS_S",
    "AgentAdapter",
    "InputProcessorAdapter",
    "NarrativeGeneratorAdapter",
    "WorldBuilderAdapter",
    "ipa_worker",
    "nga_worker",
    "wba_worker",
]

AGENT_TIMEOUTS_S: Mapping[AgentType, float] = {
    AgentType.IPA: 10.0,
    AgentType.WBA: 15.0,
    AgentType.NGA: 20.0,
}
"""The original per-agent timeouts of TTA's pipeline, in seconds."""

_log = get_logger("tta_agents.workers")

R = TypeVar("R", bound=BaseModel)
Q = TypeVar("Q", bound=BaseModel)


@runtime_checkable
class AgentAdapter(Protocol):
    """What every TTA adapter has: its own fallback switch."""

    fallback_to_mock: bool


@runtime_checkable
class InputProcessorAdapter(AgentAdapter, Protocol):
    """TTA's ``IPAAdapter``: turns the player's text into normalised text and routing."""

    async def process_input(self, text: str) -> Mapping[str, Any]:
        """The IPA contract's response payload for ``text``."""
        ...


@runtime_checkable
class WorldBuilderAdapter(AgentAdapter, Protocol):
    """TTA's ``WBAAdapter``: applies updates to a world and returns its state."""

    async def process_world_request(
        self, world_id: str, updates: dict[str, Any] | None = None
    ) -> Mapping[str, Any]:
        """The WBA contract's response payload for ``world_id`` after ``updates``."""
        ...


@runtime_checkable
class NarrativeGeneratorAdapter(AgentAdapter, Protocol):
    """TTA's ``NGAAdapter``: writes the story for a prompt and context."""

    async def generate_narrative(
        self, prompt: str, context: dict[str, Any] | None = None
    ) -> Mapping[str, Any]:
        """The NGA contract's response payload for ``prompt``."""
        ...


def _ipa_fallback(request: IPARequest) -> dict[str, Any]:
    return {
        "normalized_text": request.text,
        "routing": {"intent": "unknown", "confidence": 0.5},
        "source": MOCK_FALLBACK_SOURCE,
    }


def _wba_fallback(request: WBARequest) -> dict[str, Any]:
    state: dict[str, Any] = {"id": request.world_id, "regions": [], "entities": []}
    state.update(request.updates)
    return {
        "world_id": request.world_id,
        "world_state": state,
        "cached": False,
        "source": MOCK_FALLBACK_SOURCE,
    }


def _nga_fallback(request: NGARequest) -> dict[str, Any]:
    story = f"Generated story for: {request.prompt[:64]}..."
    return {
        "story": story,
        "raw": story,
        "context_used": bool(request.context),
        "source": MOCK_FALLBACK_SOURCE,
    }


def _build(
    agent_type: AgentType,
    coordinator: MessageCoordinator,
    registry: AgentRegistry | None,
    instance: str,
    adapter: AgentAdapter,
    request_model: type[Q],
    response_model: type[R],
    call: Callable[[Q], Awaitable[Mapping[str, Any]]],
    fallback: Callable[[Q], dict[str, Any]],
    *,
    fallback_to_mock: bool,
    timeout_s: float | None,
    worker_options: dict[str, Any],
) -> AgentWorker:
    agent_id: AgentId = create_agent_id(agent_type, instance)
    limit = AGENT_TIMEOUTS_S[agent_type] if timeout_s is None else timeout_s
    if not limit > 0:
        raise ConfigurationError(f"timeout_s must be > 0 seconds, got {limit}")
    adapter.fallback_to_mock = fallback_to_mock
    log = _log.bind(agent=str(agent_id))
    worker_options.setdefault("name", f"{agent_type.value}:{instance}")
    worker = AgentWorker(coordinator, registry, agent_id, **worker_options)

    async def handle(ctx: MessageContext[Q]) -> dict[str, Any]:
        request = ctx.payload
        try:
            async with asyncio.timeout(limit):
                answer = await call(request)
            return response_model.model_validate(dict(answer)).model_dump(mode="json")
        except TimeoutError:
            reason = f"{agent_type.short_name} adapter timed out after {limit}s"
            if not fallback_to_mock:
                raise
        except ValidationError as exc:
            reason = f"{agent_type.short_name} adapter returned an invalid response: {exc}"
            if not fallback_to_mock:
                raise PermanentError(reason) from exc
        except Exception as exc:
            reason = f"{agent_type.short_name} adapter failed: {type(exc).__name__}: {exc}"
            if not fallback_to_mock:
                raise
        log.warning("adapter_fallback", reason=reason, attempts=ctx.attempts)
        reply = response_model.model_validate(fallback(request)).model_dump(mode="json")
        reply["fallback_reason"] = reason
        return reply

    worker.add_handler(handle, MessageType.REQUEST, payload=request_model)
    return worker


def ipa_worker(
    coordinator: MessageCoordinator,
    registry: AgentRegistry | None,
    instance: str,
    adapter: InputProcessorAdapter,
    *,
    fallback_to_mock: bool = True,
    timeout_s: float | None = None,
    **worker_options: Any,
) -> AgentWorker:
    """A worker for the input processor ``instance``: ``{text}`` → :class:`IPAResponse`.

    Args:
        coordinator: the queues (compat or native coordinator).
        registry: where the agent registers (None: unregistered).
        instance: the agent instance (``AgentId("input_processor", instance)``).
        adapter: TTA's ``IPAAdapter`` or anything with ``process_input(text)``.
        fallback_to_mock: the fallback switch (see the module docstring).
        timeout_s: the adapter's time limit (10 s, the original's, by default).
        **worker_options: passed to ``AgentWorker`` (``concurrency``, ``grace_period``...).

    Raises:
        ConfigurationError: an invalid instance, timeout or worker option.
    """

    async def call(request: IPARequest) -> Mapping[str, Any]:
        return await adapter.process_input(request.text)

    return _build(
        AgentType.IPA,
        coordinator,
        registry,
        instance,
        adapter,
        IPARequest,
        IPAResponse,
        call,
        _ipa_fallback,
        fallback_to_mock=fallback_to_mock,
        timeout_s=timeout_s,
        worker_options=worker_options,
    )


def wba_worker(
    coordinator: MessageCoordinator,
    registry: AgentRegistry | None,
    instance: str,
    adapter: WorldBuilderAdapter,
    *,
    fallback_to_mock: bool = True,
    timeout_s: float | None = None,
    **worker_options: Any,
) -> AgentWorker:
    """A worker for the world builder ``instance``: ``{world_id, updates}`` → :class:`WBAResponse`.

    Arguments as :func:`ipa_worker` (the default timeout is 15 s); ``adapter`` has
    ``process_world_request(world_id, updates)``.
    """

    async def call(request: WBARequest) -> Mapping[str, Any]:
        return await adapter.process_world_request(request.world_id, request.updates or None)

    return _build(
        AgentType.WBA,
        coordinator,
        registry,
        instance,
        adapter,
        WBARequest,
        WBAResponse,
        call,
        _wba_fallback,
        fallback_to_mock=fallback_to_mock,
        timeout_s=timeout_s,
        worker_options=worker_options,
    )


def nga_worker(
    coordinator: MessageCoordinator,
    registry: AgentRegistry | None,
    instance: str,
    adapter: NarrativeGeneratorAdapter,
    *,
    fallback_to_mock: bool = True,
    timeout_s: float | None = None,
    **worker_options: Any,
) -> AgentWorker:
    """A worker for the narrative generator ``instance``: ``{prompt, context}`` → NGAResponse.

    Arguments as :func:`ipa_worker` (the default timeout is 20 s); ``adapter`` has
    ``generate_narrative(prompt, context)``.
    """

    async def call(request: NGARequest) -> Mapping[str, Any]:
        return await adapter.generate_narrative(request.prompt, request.context or None)

    return _build(
        AgentType.NGA,
        coordinator,
        registry,
        instance,
        adapter,
        NGARequest,
        NGAResponse,
        call,
        _nga_fallback,
        fallback_to_mock=fallback_to_mock,
        timeout_s=timeout_s,
        worker_options=worker_options,
    )
