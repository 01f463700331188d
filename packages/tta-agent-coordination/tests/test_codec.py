"""``redis/codec.py``: what is stored and what is decoded from it, exactly.

The stored forms are read back by other processes (and other versions), so the exact
field names, omissions and conversions are part of the format. The receive and send hot
paths build models without pydantic's ``model_construct`` (``codec.assemble_model``);
the tests of that pin the result to ``model_construct``'s, state for state, so a pydantic
release that changes a model's internals fails here.
"""

from __future__ import annotations

import copy
import itertools
import json
import pickle
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    MessagePriority,
    MessageResult,
    MessageType,
    ReceivedMessage,
    SendStatus,
)
from tta_agent_coordination.errors import (
    MessageValidationError,
    NonFiniteNumberError,
    PayloadTooDeepError,
)
from tta_agent_coordination.models import (
    DeadLetter,
    FailureType,
    QueueMessage,
    RoutingKey,
    UndecodableDeadLetter,
)
from tta_agent_coordination.redis import codec
from tta_agent_coordination.redis.codec import (
    MAX_PAYLOAD_DEPTH,
    DecodeError,
    assemble_model,
    check_payload,
    decode_dead_letter,
    decode_delivery,
    envelope_json,
    ms_to_iso,
    priority_index,
    raw_entry_fields,
    stamped_envelope_json,
    text,
    to_ms,
)

SENDER = AgentId("planner", "p1")
RECIPIENT = AgentId("narrator", "n1")
MESSAGE = AgentMessage(
    sender=SENDER,
    recipient=RECIPIENT,
    message_type=MessageType.REQUEST,
    payload={"scene": "bridge"},
)


def message(**fields: object) -> AgentMessage:
    fields.setdefault("message_id", "msg-000001")
    return AgentMessage.model_validate(
        {"sender": SENDER, "recipient": RECIPIENT, "message_type": MessageType.EVENT, **fields}
    )


# --- text -------------------------------------------------------------------------------


def test_text_decodes_bytes_as_utf8_and_replaces_invalid_bytes() -> None:
    assert text(b"caf\xc3\xa9") == "café"
    assert text(b"ok\xff") == "ok\ufffd"
    assert text("already") == "already"
    assert text(42) == "42"


# --- envelope_json and stamped_envelope_json ------------------------------------------


def test_envelope_omits_fields_left_at_their_defaults() -> None:
    stored = json.loads(envelope_json(message(payload={"a": 1})))
    assert stored == {
        "message_id": "msg-000001",
        "sender": {"type": "planner", "instance": "p1"},
        "recipient": {"type": "narrator", "instance": "n1"},
        "message_type": "event",
        "payload": {"a": 1},
    }


@pytest.mark.parametrize(
    ("fields", "key", "value"),
    [
        ({"headers": {"h": "v"}}, "headers", {"h": "v"}),
        ({"routing": RoutingKey(topic="t")}, "routing", {"topic": "t", "tags": []}),
        ({"routing": RoutingKey(tags=("x",))}, "routing", {"tags": ["x"]}),
        ({"priority": MessagePriority.HIGH}, "priority", 9),
        ({"priority": MessagePriority.LOW}, "priority", 1),
        ({"correlation_id": "c-1"}, "correlation_id", "c-1"),
    ],
)
def test_envelope_keeps_every_field_that_differs_from_its_default(
    fields: dict[str, object], key: str, value: object
) -> None:
    original = message(**fields)
    stored = json.loads(envelope_json(original))
    assert stored[key] == value
    assert AgentMessage.model_validate_json(envelope_json(original)) == original


def test_envelope_round_trips_a_message_with_every_field_set() -> None:
    original = message(
        payload={"kind": "k", "n": [1, 2]},
        priority=MessagePriority.HIGH,
        routing=RoutingKey(topic="world", tags=("a", "b")),
        timestamp="2026-12-01T00:00:00+00:00",
        correlation_id="corr-1",
        reply_to=AgentId("client"),
        headers={"x": "y"},
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert AgentMessage.model_validate_json(envelope_json(original)) == original
    default = message()
    assert AgentMessage.model_validate_json(envelope_json(default)) == default


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


# --- small conversions ------------------------------------------------------------------


def test_priority_index_is_the_one_based_position_high_first() -> None:
    assert priority_index(MessagePriority.HIGH) == 1
    assert priority_index(MessagePriority.NORMAL) == 2
    assert priority_index(MessagePriority.LOW) == 3


def test_to_ms_and_ms_to_iso_are_exact() -> None:
    moment = datetime(2026, 12, 1, 10, 30, 15, 123000, tzinfo=UTC)
    assert to_ms(moment) == 1_796_121_015_123
    assert to_ms(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1000
    assert to_ms(moment.astimezone(timezone(timedelta(hours=2)))) == 1_796_121_015_123
    assert ms_to_iso(1_796_121_015_123) == "2026-12-01T10:30:15.123000+00:00"
    assert ms_to_iso("1000") == "1970-01-01T00:00:01+00:00"
    assert ms_to_iso(b"1500") == "1970-01-01T00:00:01.500000+00:00"
    assert ms_to_iso(1000) == "1970-01-01T00:00:01+00:00"  # cached value, same answer


def test_ms_to_iso_remembers_recent_values() -> None:
    # A batch shares its lease deadline: the same string is handed out, not rebuilt.
    first = ms_to_iso(1_796_121_015_999)
    assert ms_to_iso(1_796_121_015_999) is first
    assert ms_to_iso("1796121015999") is first


def test_ms_to_iso_cache_stays_bounded() -> None:
    for ms in range(3000):
        assert ms_to_iso(ms) == datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()
        assert len(codec._iso_cache) <= 1024  # pyright: ignore[reportPrivateUsage]


# --- decode_delivery ------------------------------------------------------------------


def test_decode_delivery_builds_the_received_message() -> None:
    original = message(priority=MessagePriority.HIGH, payload={"a": 1})
    item = [b"tok-1", envelope_json(original).encode(), b"3", b"boom", b"1000", b"61000"]
    received = decode_delivery(item)
    assert received.token == "tok-1"
    assert received.visibility_deadline == "1970-01-01T00:01:01+00:00"
    queued = received.queue_message
    assert queued.message == original
    assert queued.priority is MessagePriority.HIGH
    assert queued.enqueued_at == "1970-01-01T00:00:01+00:00"
    assert queued.delivery_attempts == 3
    assert queued.last_error == "boom"


@pytest.mark.parametrize("no_error", [b"", "", None, 0])
def test_decode_delivery_without_error_has_no_last_error(no_error: object) -> None:
    item = ["tok", envelope_json(message()), "1", no_error, "5", "6"]
    queued = decode_delivery(item).queue_message
    assert queued.last_error is None
    assert queued.delivery_attempts == 1
    assert queued.priority is MessagePriority.NORMAL


def test_decode_delivery_reports_the_token_of_an_undecodable_envelope() -> None:
    with pytest.raises(DecodeError, match=r"^undecodable message envelope: ") as caught:
        decode_delivery([b"tok-9", b"{not json", b"1", b"", b"0", b"0"])
    assert caught.value.token == "tok-9"
    assert str(caught.value).startswith("undecodable message envelope")


@pytest.mark.parametrize(
    ("position", "value"),
    [(2, b"many"), (3, None), (4, b""), (4, b"yesterday"), (5, b""), (4, b"9" * 30)],
    ids=["attempts", "error-missing", "empty-t", "non-numeric-t", "empty-deadline", "huge-t"],
)
def test_decode_delivery_turns_every_malformed_field_into_a_decode_error(
    position: int, value: object
) -> None:
    # issue 23 item 1: these raised ValueError/TypeError/OverflowError, which nobody caught.
    item: list[object] = [b"tok-3", envelope_json(message()).encode(), b"1", b"", b"5", b"6"]
    item[position] = value
    if value is None:
        del item[position]
    with pytest.raises(DecodeError) as caught:
        decode_delivery(item)
    assert caught.value.token == "tok-3"


# --- payload checks at send: one depth limit, no NaN --------------------------------------


def nested(levels: int) -> dict[str, object]:
    """A payload nesting ``levels`` levels (the payload dict itself is level 1)."""
    value: dict[str, object] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_a_payload_at_the_depth_limit_is_sent_and_decoded_back() -> None:
    original = message(payload=nested(MAX_PAYLOAD_DEPTH))
    assert AgentMessage.model_validate_json(envelope_json(original)) == original
    lists: list[object] = [1]
    for _ in range(MAX_PAYLOAD_DEPTH - 2):
        lists = [lists]
    with_lists = message(payload={"l": lists})
    assert AgentMessage.model_validate_json(envelope_json(with_lists)) == with_lists


@pytest.mark.parametrize("levels", [MAX_PAYLOAD_DEPTH + 1, 199, 254])
def test_a_payload_deeper_than_the_limit_is_refused_at_send(levels: int) -> None:
    # Before: 200-255 levels serialised fine and could never be decoded by a receiver.
    with pytest.raises(PayloadTooDeepError, match=f"more than {MAX_PAYLOAD_DEPTH} levels") as e:
        stamped_envelope_json(message(payload=nested(levels)))
    assert isinstance(e.value, MessageValidationError)
    assert e.value.message_id == "msg-000001"


def test_the_depth_limit_leaves_room_for_the_decoder() -> None:
    # The decoder's own limit: the deepest envelope it parses is far beyond the send limit.
    deepest = message(payload=nested(MAX_PAYLOAD_DEPTH + 90))
    raw = deepest.model_dump_json()
    assert AgentMessage.model_validate_json(raw) == deepest


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"x": float("nan")}, "payload.x"),
        ({"x": [1.0, float("inf")]}, "payload.x[1]"),
        ({"x": {"y": float("-inf")}}, "payload.x.y"),
    ],
)
def test_non_finite_numbers_are_refused_at_send(payload: dict[str, object], path: str) -> None:
    # Before: they became null on the wire, silently.
    with pytest.raises(NonFiniteNumberError, match="JSON has no NaN") as caught:
        envelope_json(message(payload=payload))
    assert caught.value.path == path
    assert isinstance(caught.value, MessageValidationError)


def test_finite_floats_and_ordinary_payloads_pass_the_check() -> None:
    check_payload(message(payload={"f": 1.5, "l": [0.0, -2e300], "s": "NaN", "t": (1, 2)}))
    check_payload(message())


# --- assemble_model: the fast models equal model_construct's -------------------


def reference(item: list[object], queue: AgentId | None = None) -> ReceivedMessage:
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
        queue=queue,
    )


ITEMS: list[list[object]] = [
    ["2-1700000000000-0", MESSAGE.model_dump_json(), 1, "", 1_700_000_000_000, 1_700_000_030_000],
    ["1-1-5", MESSAGE.model_dump_json(), 3, "boom", 1_700_000_000_123, 1_700_000_005_000],
]


def test_assembled_models_hold_exactly_what_model_construct_gives() -> None:
    for item, queue in itertools.product(ITEMS, (None, AgentId("narrator"))):
        fast, slow = decode_delivery(item, queue), reference(item, queue)
        assert fast.queue == queue
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
    values = {
        "message_id": "m1",
        "delivered": True,
        "error": None,
        "recipient": AgentId("narrator", "n1"),
        "duplicate": False,
        "status": SendStatus.ENQUEUED,
        "scheduled_for": None,
    }
    fast = assemble_model(MessageResult, dict(values))
    slow = MessageResult.model_construct(**values)  # type: ignore[arg-type]
    assert fast == slow
    assert fast.__getstate__() == slow.__getstate__()
    assert fast.model_copy(update={"delivered": False}).delivered is False


# --- decode_dead_letter ---------------------------------------------------------------


def dead_fields(**overrides: object) -> dict[object, object]:
    fields: dict[object, object] = {
        b"m": envelope_json(message(payload={"x": 1})).encode(),
        b"p": b"3",
        b"a": b"4",
        b"e": b"handler failed",
        b"f": b"permanent",
        b"d": b"1796121015123",
    }
    for key, value in overrides.items():
        if value is None:
            fields.pop(key.encode())
        else:
            fields[key.encode()] = value
    return fields


def test_decode_dead_letter_reads_every_field() -> None:
    letter = decode_dead_letter(b"1-0", dead_fields())
    assert isinstance(letter, DeadLetter)
    assert letter.dead_letter_id == "1-0"
    assert letter.message == message(payload={"x": 1})
    assert letter.priority is MessagePriority.LOW
    assert letter.attempts == 4
    assert letter.last_error == "handler failed"
    assert letter.failure_type is FailureType.PERMANENT
    assert letter.dead_at == datetime(2026, 12, 1, 10, 30, 15, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("p", "priority"), [(b"1", MessagePriority.HIGH), (b"2", MessagePriority.NORMAL)]
)
def test_decode_dead_letter_priority_is_the_one_based_index(
    p: bytes, priority: MessagePriority
) -> None:
    letter = decode_dead_letter("2-0", dead_fields(p=p, e=b"", f=b"timeout"))
    assert isinstance(letter, DeadLetter)
    assert letter.priority is priority
    assert letter.last_error is None
    assert letter.failure_type is FailureType.TIMEOUT


@pytest.mark.parametrize(
    "broken",
    [
        {"m": None},
        {"p": None},
        {"a": None},
        {"e": None},
        {"f": None},
        {"d": None},
        {"p": b"4"},
        {"p": b"x"},
        {"a": b"many"},
        {"f": b"unknown"},
        {"d": b"yesterday"},
        {"m": b"{}"},
    ],
)
def test_decode_dead_letter_of_a_foreign_entry_is_listed_raw(broken: dict[str, object]) -> None:
    # issue 23 item 3: these were skipped (None), so `dlq list` showed nothing.
    letter = decode_dead_letter(b"3-0", dead_fields(**broken))
    assert isinstance(letter, UndecodableDeadLetter)
    assert letter.dead_letter_id == "3-0"
    assert letter.reason.startswith("undecodable dead letter: ")
    expected = {k.decode(): v.decode() for k, v in dead_fields(**broken).items()}  # type: ignore[union-attr]
    assert letter.fields == expected


def test_a_malformed_dead_letter_is_listed_raw_with_its_original_fields() -> None:
    original = {"kind": "not-an-entry", "payload": "p-1"}
    fields = {
        b"i": b"",
        b"m": b"",
        b"p": b"2",
        b"a": b"0",
        b"e": b"malformed entry: no message id (field i)",
        b"f": b"malformed",
        b"d": b"1796121015123",
        b"t": b"1796121015000",
        b"o": b"5-0",
        b"r": json.dumps(original).encode(),
    }
    letter = decode_dead_letter(b"6-0", fields)
    assert isinstance(letter, UndecodableDeadLetter)
    assert letter.failure_type == FailureType.MALFORMED.value
    assert letter.message_id is None
    assert letter.reason == "malformed entry: no message id (field i)"
    assert letter.dead_at == datetime(2026, 12, 1, 10, 30, 15, 123000, tzinfo=UTC)
    assert raw_entry_fields(letter) == original
    # A malformed one is never shown as a deliverable message, even with a valid envelope.
    fields[b"i"] = b"msg-000001"
    fields[b"m"] = envelope_json(message()).encode()
    again = decode_dead_letter(b"7-0", fields)
    assert isinstance(again, UndecodableDeadLetter)
    assert again.message_id == "msg-000001"
    assert raw_entry_fields(again.model_copy(update={"fields": {"r": "[1]"}})) is None
    assert raw_entry_fields(again.model_copy(update={"fields": {"r": "{"}})) is None
    assert raw_entry_fields(again.model_copy(update={"fields": {}})) is None
