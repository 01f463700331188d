"""The receive path's fast model assembly equals pydantic's ``model_construct``, state for state.

``codec.decode_delivery`` builds ``QueueMessage`` and ``ReceivedMessage`` without
``model_construct`` (see ``codec._assemble``); these tests fail if a pydantic release
changes what a constructed model holds.
"""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from tta_agent_coordination import AgentId, AgentMessage, MessageType, QueueMessage, ReceivedMessage
from tta_agent_coordination.redis.codec import decode_delivery, ms_to_iso

MESSAGE = AgentMessage(
    sender=AgentId("planner", "p1"),
    recipient=AgentId("narrator", "n1"),
    message_type=MessageType.REQUEST,
    payload={"scene": "bridge"},
)


def reference(item: list[object]) -> ReceivedMessage:
    message = AgentMessage.model_validate_json(item[1])  # type: ignore[arg-type]
    return ReceivedMessage.model_construct(
        token=item[0],
        queue_message=QueueMessage.model_construct(
            message=message,
            priority=message.priority,
            enqueued_at=ms_to_iso(item[4]),
            delivery_attempts=int(item[2]),  # type: ignore[call-overload]
            last_error=item[3] or None,
        ),
        visibility_deadline=ms_to_iso(item[5]),
    )


ITEMS: list[list[object]] = [
    ["2-1700000000000-0", MESSAGE.model_dump_json(), 1, "", 1_700_000_000_000, 1_700_000_030_000],
    ["1-1-5", MESSAGE.model_dump_json(), 3, "boom", 1_700_000_000_123, 1_700_000_005_000],
]


def test_assembled_models_hold_exactly_what_model_construct_gives() -> None:
    for item in ITEMS:
        fast, slow = decode_delivery(item), reference(item)
        assert fast == slow
        assert fast.__getstate__() == slow.__getstate__()
        assert fast.queue_message.__getstate__() == slow.queue_message.__getstate__()
        assert fast.model_fields_set == slow.model_fields_set
        assert fast.queue_message.model_fields_set == slow.queue_message.model_fields_set


def test_assembled_models_behave_as_models() -> None:
    received = decode_delivery(ITEMS[1])
    assert received.attempts == 3
    assert received.queue_message.last_error == "boom"
    dumped = received.model_dump(mode="json")
    assert ReceivedMessage.model_validate(dumped) == received
    assert ReceivedMessage.model_validate_json(received.model_dump_json()) == received
    assert received.model_copy(update={"token": "x"}).token == "x"
    assert copy.deepcopy(received) == received
    assert pickle.loads(pickle.dumps(received)) == received
    received.visibility_deadline = None  # an ordinary, mutable model
    assert received.visibility_deadline is None


def test_send_results_equal_model_construct() -> None:
    from tta_agent_coordination import MessageResult
    from tta_agent_coordination.redis.codec import assemble_model

    values = {
        "message_id": "m1",
        "delivered": True,
        "error": None,
        "recipient": AgentId("narrator", "n1"),
        "duplicate": False,
    }
    fast = assemble_model(MessageResult, dict(values))
    slow = MessageResult.model_construct(**values)  # type: ignore[arg-type]
    assert fast == slow
    assert fast.__getstate__() == slow.__getstate__()
    assert fast.model_copy(update={"delivered": False}).delivered is False


@given(
    payload=st.dictionaries(
        st.text(max_size=8),
        st.one_of(st.integers(), st.text(max_size=20), st.none(), st.booleans()),
        max_size=4,
    ),
    stamped=st.booleans(),
    correlation=st.one_of(st.none(), st.text(min_size=1, max_size=10)),
)
def test_stamped_envelope_decodes_to_the_stamped_message(
    payload: dict[str, object], stamped: bool, correlation: str | None
) -> None:
    from tta_agent_coordination.redis.codec import envelope_json, stamped_envelope_json

    message = MESSAGE.model_copy(
        update={
            "payload": payload,
            "correlation_id": correlation,
            "timestamp": "2026-01-02T03:04:05+00:00" if stamped else None,
        }
    )
    before = datetime.now(UTC)
    decoded = AgentMessage.model_validate_json(stamped_envelope_json(message))
    after = datetime.now(UTC)
    if stamped:
        assert stamped_envelope_json(message) == envelope_json(message)
        assert decoded == message
    else:
        assert decoded.timestamp is not None
        assert before <= datetime.fromisoformat(decoded.timestamp) <= after
        assert decoded == message.model_copy(update={"timestamp": decoded.timestamp})
