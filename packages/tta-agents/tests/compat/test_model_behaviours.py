"""Behaviours 43-47 of tta-original.md §4 (the models), through ``tta_agents.compat``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tta_agents.compat import (
    AgentId,
    AgentMessage,
    AgentType,
    FailureType,
    MessagePriority,
    MessageResult,
    MessageType,
    OrchestrationRequest,
    QueueMessage,
    ReceivedMessage,
)


def test_b43_enum_values_construction_and_priority_order():
    assert [t.value for t in AgentType] == [
        "input_processor",
        "world_builder",
        "narrative_generator",
        "openhands",
    ]
    assert [m.value for m in MessageType] == ["request", "response", "event"]
    assert MessageType("event") is MessageType.EVENT
    assert AgentType("world_builder") is AgentType.WBA
    assert [p.value for p in MessagePriority] == [1, 5, 9]
    assert MessagePriority.LOW < MessagePriority.NORMAL < MessagePriority.HIGH
    assert FailureType("permanent") is FailureType.PERMANENT
    message = AgentMessage(
        message_id="msg-0001",
        sender=AgentId(AgentType.IPA, "a"),
        recipient=AgentId(AgentType.WBA, "b"),
        message_type=MessageType.REQUEST,
        priority=MessagePriority.HIGH,
    )
    assert message.model_dump(mode="json")["priority"] == 9
    assert message.model_dump()["priority"] == 9


def test_b44_agent_id_compares_by_value_and_dumps_type_as_string():
    assert AgentId(type=AgentType.IPA, instance="x") == AgentId("input_processor", "x")
    assert AgentId(AgentType.IPA, "x").model_dump() == {"type": "input_processor", "instance": "x"}
    # Now frozen and hashable (the original was neither).
    assert len({AgentId(AgentType.IPA, "x"), AgentId("input_processor", "x")}) == 1


def test_b45_agent_message_defaults_and_round_trip():
    message = AgentMessage(
        message_id="msg-0002",
        sender=AgentId(AgentType.IPA),
        recipient=AgentId(AgentType.NGA, "n"),
        message_type=MessageType.EVENT,
        payload={"a": [1, 2]},
    )
    assert message.priority is MessagePriority.NORMAL
    assert message.routing.topic is None
    # Replacement: tags is an empty tuple (the routing key is frozen), not a list.
    assert tuple(message.routing.tags) == ()
    assert AgentMessage.model_validate(message.model_dump()) == message
    with pytest.raises(ValidationError):
        AgentMessage(
            message_id="short",
            sender=AgentId(AgentType.IPA),
            recipient=AgentId(AgentType.NGA),
            message_type=MessageType.EVENT,
        )


def test_b46_queue_and_result_defaults():
    message = AgentMessage(
        message_id="msg-0003",
        sender=AgentId(AgentType.IPA),
        recipient=AgentId(AgentType.WBA),
        message_type=MessageType.REQUEST,
    )
    queued = QueueMessage(message=message)
    assert queued.delivery_attempts == 0
    assert queued.enqueued_at is None
    assert ReceivedMessage(token="t", queue_message=queued).visibility_deadline is None
    assert MessageResult(message_id="msg-0003", delivered=True).error is None


def test_b47_unknown_or_empty_types_are_rejected():
    with pytest.raises(ValueError, match="unknown_agent"):
        AgentType("unknown_agent")
    for bad in ("", "has space", "a:b"):
        with pytest.raises(ValueError, match="invalid agent type"):
            AgentId(bad)
    with pytest.raises(ValidationError):
        OrchestrationRequest.model_validate({"session_id": "s", "entrypoint": "unknown_agent"})
