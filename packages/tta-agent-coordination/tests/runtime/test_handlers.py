"""The handler table on its own: which handler a message goes to, and what is refused.

``HandlerTable`` dispatches a message to the most specific handler ((type, kind), then
(type, any kind), then (any type, kind), then (any, any)); ``HandlerSpec`` validates
payloads and names handlers in logs. The exact errors and listings are pinned (these
tests also kill the mutants of ``runtime/handlers.py``, see ``scripts/mutation``). The
worker-level behaviour (dispatch through a live worker, misuse errors) is in
``test_worker.py``.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tta_agent_coordination import AgentId, AgentMessage, MessageType
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.runtime.handlers import HandlerSpec, HandlerTable

A = AgentId("a")
B = AgentId("b")


async def h_request_greet(ctx: Any) -> None: ...
async def h_request_any(ctx: Any) -> None: ...
async def h_any_greet(ctx: Any) -> None: ...
async def h_any_any(ctx: Any) -> None: ...


def msg(mtype: MessageType, **payload: Any) -> AgentMessage:
    return AgentMessage(sender=A, recipient=B, message_type=mtype, payload=payload)


def full_table(kind_field: str = "kind") -> HandlerTable:
    table = HandlerTable(kind_field)
    table.add(HandlerSpec(h_request_greet, MessageType.REQUEST, "greet"))
    table.add(HandlerSpec(h_request_any, MessageType.REQUEST, None))
    table.add(HandlerSpec(h_any_greet, None, "greet"))
    table.add(HandlerSpec(h_any_any, None, None))
    return table


def found(table: HandlerTable, message: AgentMessage) -> Any:
    spec = table.find(message)
    return None if spec is None else spec.fn


# --- dispatch: the most specific match wins --------------------------------------------


def test_the_most_specific_handler_wins() -> None:
    table = full_table()
    assert len(table) == 4
    assert found(table, msg(MessageType.REQUEST, kind="greet")) is h_request_greet
    assert found(table, msg(MessageType.REQUEST, kind="other")) is h_request_any
    assert found(table, msg(MessageType.REQUEST)) is h_request_any
    assert found(table, msg(MessageType.EVENT, kind="greet")) is h_any_greet
    assert found(table, msg(MessageType.EVENT, kind="other")) is h_any_any
    assert found(table, msg(MessageType.EVENT)) is h_any_any


def test_each_fallback_in_turn() -> None:
    table = HandlerTable()
    assert table.find(msg(MessageType.EVENT, kind="greet")) is None
    table.add(HandlerSpec(h_any_any, None, None))
    assert found(table, msg(MessageType.EVENT, kind="greet")) is h_any_any
    table.add(HandlerSpec(h_any_greet, None, "greet"))
    assert found(table, msg(MessageType.EVENT, kind="greet")) is h_any_greet
    table.add(HandlerSpec(h_request_any, MessageType.EVENT, None))
    assert found(table, msg(MessageType.EVENT, kind="greet")) is h_request_any
    table.add(HandlerSpec(h_request_greet, MessageType.EVENT, "greet"))
    assert found(table, msg(MessageType.EVENT, kind="greet")) is h_request_greet


def test_a_kind_handler_does_not_take_messages_without_that_kind() -> None:
    table = HandlerTable()
    table.add(HandlerSpec(h_request_greet, MessageType.REQUEST, "greet"))
    table.add(HandlerSpec(h_any_greet, None, "greet"))
    assert table.find(msg(MessageType.REQUEST)) is None
    assert table.find(msg(MessageType.REQUEST, kind="other")) is None
    assert table.find(msg(MessageType.REQUEST, kind=None)) is None


# --- the kind field ------------------------------------------------------------------


def test_the_kind_is_read_from_the_configured_field_and_must_be_a_string() -> None:
    table = full_table("op")
    assert table.kind_field == "op"
    assert HandlerTable().kind_field == "kind"
    assert table.kind_of(msg(MessageType.REQUEST, op="greet", kind="x")) == "greet"
    assert table.kind_of(msg(MessageType.REQUEST, kind="greet")) is None
    assert table.kind_of(msg(MessageType.REQUEST, op=3)) is None
    assert found(table, msg(MessageType.REQUEST, op="greet")) is h_request_greet
    assert found(table, msg(MessageType.REQUEST, kind="greet")) is h_request_any
    assert found(table, msg(MessageType.REQUEST, op=["greet"])) is h_request_any


def test_an_empty_kind_field_is_refused() -> None:
    with pytest.raises(
        ConfigurationError, match=r"^kind_field must be a non-empty payload field name$"
    ):
        HandlerTable("")


# --- what registration refuses --------------------------------------------------------


def test_a_second_handler_for_the_same_type_and_kind_is_refused() -> None:
    table = full_table()
    with pytest.raises(ConfigurationError) as caught:
        table.add(HandlerSpec(h_any_any, MessageType.REQUEST, "greet"))
    assert str(caught.value) == (
        f"{h_request_greet.__qualname__} already handles message type request with kind greet"
    )
    with pytest.raises(ConfigurationError) as caught:
        table.add(HandlerSpec(h_request_greet, None, None))
    assert str(caught.value) == (
        f"{h_any_any.__qualname__} already handles message type any with kind any"
    )
    assert len(table) == 4
    assert found(table, msg(MessageType.REQUEST, kind="greet")) is h_request_greet


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
def test_a_timeout_must_be_positive(timeout: float) -> None:
    table = HandlerTable()
    with pytest.raises(ConfigurationError) as caught:
        table.add(HandlerSpec(h_any_any, None, None, timeout=timeout))
    assert str(caught.value) == f"handler timeout must be > 0 seconds, got {timeout}"
    assert len(table) == 0


def test_a_small_positive_timeout_or_none_is_accepted() -> None:
    table = HandlerTable()
    table.add(HandlerSpec(h_any_any, None, None, timeout=0.001))
    table.add(HandlerSpec(h_any_greet, None, "greet", timeout=None))
    assert len(table) == 2


# --- listings, payloads and names -----------------------------------------------------


def test_describe_lists_every_handler_sorted_with_stars_for_any() -> None:
    assert full_table().describe() == [
        ("*", "*", h_any_any.__qualname__),
        ("*", "greet", h_any_greet.__qualname__),
        ("request", "*", h_request_any.__qualname__),
        ("request", "greet", h_request_greet.__qualname__),
    ]
    assert HandlerTable().describe() == []


class Greeting(BaseModel):
    name: str


def test_parse_payload_validates_only_with_a_model() -> None:
    raw = {"name": "x", "extra": 1}
    assert HandlerSpec(h_any_any, None, None).parse_payload(raw) is raw
    parsed = HandlerSpec(h_any_any, None, None, payload_model=Greeting).parse_payload(raw)
    assert parsed == Greeting(name="x")
    with pytest.raises(ValidationError):
        HandlerSpec(h_any_any, None, None, payload_model=Greeting).parse_payload({})


def test_name_is_the_qualified_name_or_the_repr() -> None:
    assert HandlerSpec(h_any_any, None, None).name == "h_any_any"
    partial = functools.partial(h_any_any)
    assert not hasattr(partial, "__qualname__")
    assert HandlerSpec(partial, None, None).name == repr(partial)
