"""The IPA/WBA/NGA worker builders: contracts, type-wide routing, timeouts, the fallback switch.

Each test runs real workers on the core's coordinator and registry (FakeRedis and real
Redis) and talks to them with ``coordinator.request``, as TTA's pipeline does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tta_agent_coordination.errors import ConfigurationError, RemoteHandlerError
from tta_agents.contracts import MOCK_FALLBACK_SOURCE
from tta_agents.types import AgentType, ipa, nga, wba
from tta_agents.workers import (
    AGENT_TIMEOUTS_S,
    AgentAdapter,
    InputProcessorAdapter,
    NarrativeGeneratorAdapter,
    WorldBuilderAdapter,
    ipa_worker,
    nga_worker,
    wba_worker,
)

CLIENT = ipa("client")  # the requester's own address
FAST: dict[str, Any] = {"poll_interval": 0.05, "grace_period": 1.0}


class IPA:
    """An input processor with TTA's adapter interface."""

    def __init__(self, delay: float = 0.0, error: Exception | None = None, answer=None) -> None:
        self.fallback_to_mock = True
        self.delay = delay
        self.error = error
        self.answer = answer
        self.calls: list[str] = []

    async def process_input(self, text: str) -> dict[str, Any]:
        self.calls.append(text)
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        if self.answer is not None:
            return self.answer
        return {
            "normalized_text": text.strip().lower(),
            "routing": {"intent": "move", "direction": "north"},
            "source": "real_ipa",
        }


class WBA:
    def __init__(self) -> None:
        self.fallback_to_mock = True

    async def process_world_request(self, world_id: str, updates=None) -> dict[str, Any]:
        return {
            "world_id": world_id,
            "world_state": {"id": world_id, **(updates or {})},
            "cached": False,
            "source": "real_wba",
        }


class NGA:
    def __init__(self) -> None:
        self.fallback_to_mock = True

    async def generate_narrative(self, prompt: str, context=None) -> dict[str, Any]:
        return {
            "story": f"You walk {prompt}.",
            "raw": prompt,
            "context_used": bool(context),
            "source": "real_nga",
        }


def test_the_original_timeouts():
    assert AGENT_TIMEOUTS_S == {AgentType.IPA: 10.0, AgentType.WBA: 15.0, AgentType.NGA: 20.0}


def test_adapters_with_the_original_methods_satisfy_the_protocols():
    assert isinstance(IPA(), InputProcessorAdapter)
    assert isinstance(IPA(), AgentAdapter)
    assert isinstance(WBA(), WorldBuilderAdapter)
    assert isinstance(NGA(), NarrativeGeneratorAdapter)
    assert not isinstance(NGA(), InputProcessorAdapter)


async def test_three_workers_answer_their_contracts_on_type_wide_requests(
    coordination_coordinator, coordination_registry
):
    coord = coordination_coordinator
    workers = [
        ipa_worker(coord, coordination_registry, "i1", IPA(), **FAST),
        wba_worker(coord, coordination_registry, "w1", WBA(), **FAST),
        nga_worker(coord, coordination_registry, "n1", NGA(), **FAST),
    ]
    for worker in workers:
        await worker.start()
    try:
        reply = await coord.request(CLIENT, ipa(), {"text": "  Go North "}, timeout=10)
        assert reply.payload["normalized_text"] == "go north"
        assert reply.payload["routing"]["intent"] == "move"
        reply = await coord.request(
            CLIENT, wba(), {"world_id": "w-1", "updates": {"door": "open"}}, timeout=10
        )
        assert reply.payload["world_state"] == {"id": "w-1", "door": "open"}
        reply = await coord.request(
            CLIENT, nga(), {"prompt": "north", "context": {"mood": "calm"}}, timeout=10
        )
        assert reply.payload["story"] == "You walk north."
        assert reply.payload["context_used"]
        records = {str(r.agent_id) for r in await coordination_registry.list_registered()}
        assert records == {"input_processor:i1", "world_builder:w1", "narrative_generator:n1"}
    finally:
        for worker in workers:
            await worker.stop()


async def test_fallback_on_replies_with_the_degraded_answer(
    coordination_coordinator, coordination_registry
):
    adapter = IPA(error=RuntimeError("model down"))
    worker = ipa_worker(coordination_coordinator, coordination_registry, "i1", adapter, **FAST)
    assert adapter.fallback_to_mock is True
    async with worker:
        reply = await coordination_coordinator.request(CLIENT, ipa(), {"text": "look"}, timeout=10)
    assert reply.payload["source"] == MOCK_FALLBACK_SOURCE
    assert reply.payload["normalized_text"] == "look"
    assert "model down" in reply.payload["fallback_reason"]


async def test_fallback_on_a_timeout(coordination_coordinator, coordination_registry):
    adapter = IPA(delay=5)
    worker = ipa_worker(
        coordination_coordinator, coordination_registry, "i1", adapter, timeout_s=0.1, **FAST
    )
    async with worker:
        reply = await coordination_coordinator.request(CLIENT, ipa(), {"text": "wait"}, timeout=10)
    assert reply.payload["source"] == MOCK_FALLBACK_SOURCE
    assert "timed out after 0.1s" in reply.payload["fallback_reason"]


async def test_fallback_off_an_adapter_error_is_retried_then_fails_the_request(
    coordination_coordinator, coordination_registry
):
    await coordination_coordinator.configure(retry_attempts=1, backoff_base=0.01)
    adapter = IPA(error=RuntimeError("model down"))
    worker = ipa_worker(
        coordination_coordinator,
        coordination_registry,
        "i1",
        adapter,
        fallback_to_mock=False,
        **FAST,
    )
    assert adapter.fallback_to_mock is False
    async with worker:
        with pytest.raises(RemoteHandlerError, match="model down"):
            await coordination_coordinator.request(CLIENT, ipa(), {"text": "look"}, timeout=10)
    assert adapter.calls == ["look", "look"]


async def test_fallback_off_a_timeout_fails_the_request(
    coordination_coordinator, coordination_registry
):
    await coordination_coordinator.configure(retry_attempts=0)
    worker = ipa_worker(
        coordination_coordinator,
        coordination_registry,
        "i1",
        IPA(delay=5),
        fallback_to_mock=False,
        timeout_s=0.1,
        **FAST,
    )
    async with worker:
        with pytest.raises(RemoteHandlerError):
            await coordination_coordinator.request(CLIENT, ipa(), {"text": "wait"}, timeout=10)


async def test_an_invalid_adapter_answer_fails_permanently_without_fallback(
    coordination_coordinator, coordination_registry
):
    adapter = IPA(answer={"routing": {}})  # no normalized_text
    worker = ipa_worker(
        coordination_coordinator,
        coordination_registry,
        "i1",
        adapter,
        fallback_to_mock=False,
        **FAST,
    )
    async with worker:
        with pytest.raises(RemoteHandlerError, match="invalid response"):
            await coordination_coordinator.request(CLIENT, ipa(), {"text": "x"}, timeout=10)
    assert adapter.calls == ["x"]  # permanent: not retried


async def test_an_invalid_adapter_answer_falls_back(
    coordination_coordinator, coordination_registry
):
    worker = ipa_worker(
        coordination_coordinator, coordination_registry, "i1", IPA(answer={"bad": 1}), **FAST
    )
    async with worker:
        reply = await coordination_coordinator.request(CLIENT, ipa(), {"text": "x"}, timeout=10)
    assert reply.payload["source"] == MOCK_FALLBACK_SOURCE


async def test_a_payload_outside_the_contract_is_refused(
    coordination_coordinator, coordination_registry
):
    adapter = IPA()
    worker = ipa_worker(coordination_coordinator, coordination_registry, "i1", adapter, **FAST)
    async with worker:
        with pytest.raises(RemoteHandlerError):
            await coordination_coordinator.request(CLIENT, ipa(), {"txt": "typo"}, timeout=10)
    assert adapter.calls == []


def test_a_non_positive_timeout_is_refused(coordination_coordinator):
    with pytest.raises(ConfigurationError, match="timeout_s"):
        ipa_worker(coordination_coordinator, None, "i1", IPA(), timeout_s=0)


def test_an_invalid_instance_is_refused(coordination_coordinator):
    with pytest.raises(ValueError, match="invalid agent instance"):
        nga_worker(coordination_coordinator, None, "bad name", NGA())


class FailingWBA(WBA):
    async def process_world_request(self, world_id: str, updates=None) -> dict[str, Any]:
        raise ConnectionError("neo4j down")


class FailingNGA(NGA):
    async def generate_narrative(self, prompt: str, context=None) -> dict[str, Any]:
        raise ConnectionError("llm down")


async def test_world_and_narrative_fallbacks_keep_their_contracts(
    coordination_coordinator, coordination_registry
):
    coord = coordination_coordinator
    workers = [
        wba_worker(coord, coordination_registry, "w1", FailingWBA(), **FAST),
        nga_worker(coord, coordination_registry, "n1", FailingNGA(), **FAST),
    ]
    for worker in workers:
        await worker.start()
    try:
        world = await coord.request(
            CLIENT, wba(), {"world_id": "w-9", "updates": {"door": "open"}}, timeout=10
        )
        assert world.payload["world_state"] == {
            "id": "w-9",
            "regions": [],
            "entities": [],
            "door": "open",
        }
        assert world.payload["source"] == MOCK_FALLBACK_SOURCE
        story = await coord.request(CLIENT, nga(), {"prompt": "north"}, timeout=10)
        assert story.payload["story"] == "Generated story for: north..."
        assert story.payload["context_used"] is False
        assert "llm down" in story.payload["fallback_reason"]
    finally:
        for worker in workers:
            await worker.stop()


async def test_workers_run_on_the_compat_coordinator_and_registry(coordination_redis, key_prefix):
    from tta_agents.compat import RedisAgentRegistry, RedisMessageCoordinator

    coord = RedisMessageCoordinator(coordination_redis, key_prefix)
    registry = RedisAgentRegistry(coordination_redis, key_prefix, coordinator=coord)
    try:
        async with ipa_worker(coord, registry, "i1", IPA(), **FAST):
            reply = await coord.request(CLIENT, ipa(), {"text": "Look"}, timeout=10)
            assert reply.payload["normalized_text"] == "look"
            [record] = await registry.list_registered()
            assert record["name"] == "input_processor:i1"
        # The request was enqueued and acked (its reply went to the requester's inbox).
        assert coord.metrics.delivery.delivered_ok == 1
        assert coord.metrics.per_queue[("acked", "input_processor")] == 1
    finally:
        await registry.aclose()
        await coord.aclose()
