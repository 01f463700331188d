from datetime import UTC, datetime
from enum import StrEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tta_agent_coordination.errors import InvalidAgentIdError
from tta_agent_coordination.models import (
    DEFAULT_INSTANCE,
    AgentId,
    AgentMessage,
    MessagePriority,
    MessageType,
    QueueStats,
)

NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,30}", fullmatch=True)


class AgentType(StrEnum):
    IPA = "input_processor"


def test_agent_id_without_instance_is_type_wide_and_formats():
    agent = AgentId("world_builder")
    assert agent.instance is None
    assert agent.is_type_wide
    assert str(agent) == "world_builder"
    assert AgentId(type="world_builder", instance=None) == agent
    assert AgentId("world_builder", "w1") == AgentId(type="world_builder", instance="w1")
    assert not AgentId("world_builder", "w1").is_type_wide
    assert str(AgentId("world_builder", "w1")) == "world_builder:w1"


def test_type_wide_and_default_instance_are_different_addresses():
    assert AgentId("calc") != AgentId("calc", "default")
    assert len({AgentId("calc"), AgentId("calc", "default")}) == 2


def test_concrete_gives_the_default_instance_of_a_type_wide_id():
    assert AgentId("calc").concrete() == AgentId("calc", DEFAULT_INSTANCE)
    assert AgentId("calc", "w1").concrete() == AgentId("calc", "w1")


def test_type_queue_is_the_type_wide_id_of_the_type():
    assert AgentId("calc", "w1").type_queue == AgentId("calc")
    assert AgentId("calc").type_queue == AgentId("calc")


def test_parse_of_a_bare_type_round_trips_to_the_type_wide_id():
    agent = AgentId.parse("world_builder")
    assert agent == AgentId("world_builder")
    assert agent.is_type_wide
    assert AgentId.parse(str(agent)) == agent


def test_type_wide_id_round_trips_through_json_inside_a_message():
    message = AgentMessage(
        sender=AgentId("a", "1"), recipient=AgentId("calc"), message_type=MessageType.EVENT
    )
    back = AgentMessage.model_validate_json(message.model_dump_json(exclude_none=True))
    assert back.recipient == AgentId("calc")
    assert back.sender == AgentId("a", "1")
    # What older versions stored (instance always written) stays a concrete address.
    old = AgentId.model_validate({"type": "calc", "instance": "default"})
    assert old == AgentId("calc", "default")


def test_agent_id_accepts_string_enum_members_as_plain_strings():
    agent = AgentId(AgentType.IPA)
    assert agent.type == "input_processor"
    assert type(agent.type) is str
    assert agent == AgentId("input_processor")
    assert AgentId(AgentType.IPA, AgentType.IPA).instance == "input_processor"


def test_agent_id_is_frozen_and_hashable():
    agent = AgentId("a", "b")
    assert {agent, AgentId("a", "b")} == {agent}
    with pytest.raises(ValidationError):
        agent.type = "c"  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad", ["", "has:colon", "{tag}", "sp ace", "glob*", "_leading", "-x", "x" * 129, "new\nline"]
)
def test_agent_id_rejects_unsafe_names_and_names_the_value(bad):
    with pytest.raises(ValidationError, match="invalid agent type") as excinfo:
        AgentId(bad)
    assert repr(bad) in str(excinfo.value)


@given(NAMES, NAMES)
def test_parse_is_the_inverse_of_str(agent_type, instance):
    agent = AgentId(agent_type, instance)
    assert AgentId.parse(str(agent)) == agent


@pytest.mark.parametrize("bad", ["", "a:", ":b", "a:b:c", "a b", "{x}:y"])
def test_parse_rejects_malformed_text(bad):
    with pytest.raises(InvalidAgentIdError, match="invalid agent id"):
        AgentId.parse(bad)


def test_parse_without_instance_means_default():
    assert AgentId.parse("narrative_generator") == AgentId("narrative_generator")


def test_message_defaults_and_validation():
    a, b = AgentId("a"), AgentId("b")
    message = AgentMessage(sender=a, recipient=b, message_type=MessageType.REQUEST)
    assert len(message.message_id) >= 6
    assert message.priority is MessagePriority.NORMAL
    assert message.payload == {}
    assert message.timestamp is None
    other = AgentMessage(sender=a, recipient=b, message_type=MessageType.REQUEST)
    assert other.message_id != message.message_id
    with pytest.raises(ValidationError):
        AgentMessage(message_id="short", sender=a, recipient=b, message_type=MessageType.EVENT)
    with pytest.raises(ValidationError, match="timezone-aware"):
        AgentMessage(
            sender=a, recipient=b, message_type=MessageType.EVENT, expires_at=datetime(2030, 1, 1)
        )


def test_stamped_sets_timestamp_without_mutating():
    message = AgentMessage(sender=AgentId("a"), recipient=AgentId("b"), message_type="event")  # pyright: ignore[reportArgumentType]
    stamped = message.stamped()
    assert message.timestamp is None
    assert stamped.timestamp is not None
    assert datetime.fromisoformat(stamped.timestamp).tzinfo is not None
    assert stamped.stamped() is stamped


def test_message_round_trips_through_json():
    message = AgentMessage(
        sender=AgentId("a"),
        recipient=AgentId("b", "2"),
        message_type=MessageType.EVENT,
        payload={"x": [1, 2, {"y": None}]},
        priority=MessagePriority.HIGH,
        correlation_id="c1",
        reply_to=AgentId("a"),
        headers={"h": "v"},
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert AgentMessage.model_validate_json(message.model_dump_json()) == message


def test_queue_stats_unsettled():
    stats = QueueStats(
        agent_id=AgentId("a"),
        ready={MessagePriority.HIGH: 1, MessagePriority.NORMAL: 2, MessagePriority.LOW: 3},
        leased=4,
        delayed=5,
        dead=6,
    )
    assert stats.unsettled == 15
