"""Issue 23 items 1-3, 9: malformed entries, a missing consumer group, invisible dead letters.

Each test writes what another client, a bug or a rolling upgrade could leave in a queue,
and runs on FakeRedis and on real Redis (the ``coordination_redis`` fixture runs both).
"""

import asyncio
import json
import math
import time
from datetime import UTC, datetime

import pytest

from tta_agent_coordination.errors import (
    CoordinatorUnavailableError,
    MessageValidationError,
    NonFiniteNumberError,
    PayloadTooDeepError,
)
from tta_agent_coordination.models import (
    AgentMessage,
    DeadLetter,
    FailureType,
    MessagePriority,
    UndecodableDeadLetter,
)
from tta_agent_coordination.redis.codec import MAX_PAYLOAD_DEPTH, raw_entry_fields
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.redis.core import CoordinatorCore
from tta_agent_coordination.redis.keys import CONSUMER_GROUP

from .conftest import RECIPIENT, SENDER, make_message


def good_fields(message_id: str) -> dict[str, str]:
    """The fields queue_send writes (see queue_common.lua)."""
    return {
        "i": message_id,
        "m": make_message(message_id=message_id).model_dump_json(exclude_none=True),
        "a": "0",
        "e": "",
        "x": "0",
        "t": str(int(time.time() * 1000)),
    }


def broken(kind: str, message_id: str) -> dict[str, str]:
    fields = good_fields(message_id)
    if kind == "empty_t":
        fields["t"] = ""
    elif kind == "non_numeric_t":
        fields["t"] = "yesterday"
    elif kind in ("missing_e", "missing_x", "missing_i"):
        del fields[kind[-1]]
    elif kind == "non_numeric_a":
        fields["a"] = "many"
    elif kind == "non_numeric_x":
        fields["x"] = "soon"
    elif kind == "wrong_fields":
        fields = {"kind": "not-an-entry", "payload": message_id}
    elif kind == "not_json":
        fields["m"] = "{not json"
    elif kind == "wrong_envelope":
        fields["m"] = json.dumps({"message_id": message_id, "sender": 7})
    elif kind == "deep_envelope":
        deep: object = 1
        for _ in range(250):
            deep = {"a": deep}
        fields["m"] = fields["m"][:-1] + ',"payload":' + json.dumps({"d": deep}) + "}"
    else:
        raise ValueError(kind)
    return fields


KINDS = [
    "empty_t",
    "non_numeric_t",
    "missing_e",
    "missing_x",
    "missing_i",
    "non_numeric_a",
    "non_numeric_x",
    "wrong_fields",
    "not_json",
    "wrong_envelope",
    "deep_envelope",
]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_malformed_entry_is_dead_lettered_raw_and_the_batch_is_delivered(
    coordinator: RedisMessageCoordinator, coordination_redis, kind: str
):
    keys = coordinator.keys.queue(RECIPIENT)
    stream = keys.ready_for(MessagePriority.NORMAL)
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    marker = f"garbage-{kind}"
    written = broken(kind, marker)
    entry_id = await coordination_redis.xadd(stream, written)
    await coordinator.send_message(SENDER, RECIPIENT, make_message(2))

    started = time.monotonic()
    got = await coordinator.receive_batch(RECIPIENT, 10)
    assert [r.message.payload for r in got] == [{"n": 1}, {"n": 2}]
    assert await coordinator.ack_many(RECIPIENT, [r.token for r in got]) == [True, True]
    assert time.monotonic() - started < 2  # nothing waits for a lease
    assert await coordinator.receive(RECIPIENT) is None

    stats = await coordinator.queue_stats(RECIPIENT)
    assert (stats.dead, stats.unsettled) == (1, 0)
    [letter] = await coordinator.dead_letters(RECIPIENT)
    assert isinstance(letter, UndecodableDeadLetter)
    assert letter.failure_type == FailureType.MALFORMED.value
    assert letter.reason.startswith("malformed entry: ")
    assert marker in repr(letter)
    assert letter.fields["o"] == entry_id.decode()
    # every raw field is kept, as it was written
    assert raw_entry_fields(letter) == written
    if kind in ("not_json", "wrong_envelope", "deep_envelope"):
        # found by the decoder (the entry's fields are fine, its envelope is not)
        assert "undecodable message envelope" in letter.reason
    # nothing of it is left in the stream or its PEL
    assert await coordination_redis.xlen(stream) == 0
    assert (await coordination_redis.xpending(stream, CONSUMER_GROUP))["pending"] == 0


async def test_a_failed_dead_lettering_still_delivers_the_rest_of_the_batch(
    coordinator: RedisMessageCoordinator, coordination_redis, monkeypatch: pytest.MonkeyPatch
):
    real_run = CoordinatorCore.run

    def failing_run(self, operation, call, *, retry=False):
        if call.name == "queue_dlq_reject":
            raise CoordinatorUnavailableError("receive failed: injected")
        return real_run(self, operation, call, retry=retry)

    monkeypatch.setattr(CoordinatorCore, "run", failing_run)
    stream = coordinator.keys.queue(RECIPIENT).ready_for(MessagePriority.NORMAL)
    await coordination_redis.xadd(stream, broken("not_json", "bad-envelope-1"))
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    got = await coordinator.receive_batch(RECIPIENT, 10, visibility_timeout=0.2)
    assert [r.message.payload for r in got] == [{"n": 1}]
    await coordinator.ack(RECIPIENT, got[0].token)
    # once Redis answers again, the undecodable one is dead-lettered after its lease
    monkeypatch.setattr(CoordinatorCore, "run", real_run)
    await asyncio.sleep(0.3)
    assert await coordinator.receive_batch(RECIPIENT, 10) == []
    [letter] = await coordinator.dead_letters(RECIPIENT)
    assert isinstance(letter, UndecodableDeadLetter)
    assert letter.message_id == "bad-envelope-1"


async def test_a_malformed_entry_whose_lease_expired_is_dead_lettered_by_recovery(
    coordinator: RedisMessageCoordinator, coordination_redis
):
    # Reserved by another client (a lease in our set), then found by recovery: before, the
    # recover script XDELed it and then failed on tonumber(nil), so it vanished.
    keys = coordinator.keys.queue(RECIPIENT)
    stream = keys.ready_for(MessagePriority.NORMAL)
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    await coordination_redis.xgroup_destroy(stream, CONSUMER_GROUP)
    await coordination_redis.xgroup_create(stream, CONSUMER_GROUP, id="$")
    entry_id = (await coordination_redis.xadd(stream, broken("non_numeric_a", "lost-1"))).decode()
    await coordination_redis.xreadgroup(CONSUMER_GROUP, "other", {stream: ">"}, count=1)
    await coordination_redis.zadd(keys.leases, {f"2-{entry_id}": 1})
    assert await coordinator.recover_pending(RECIPIENT) == 1
    [letter] = await coordinator.dead_letters(RECIPIENT)
    assert isinstance(letter, UndecodableDeadLetter)
    assert letter.message_id == "lost-1"
    assert "deliveries (field a)" in letter.reason


async def test_an_orphaned_malformed_entry_is_dead_lettered_by_recovery(
    coordination_redis, key_prefix
):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, orphan_lease_s=0.1)
    keys = coord.keys.queue(RECIPIENT)
    stream = keys.ready_for(MessagePriority.NORMAL)
    await coord.send_message(SENDER, RECIPIENT, make_message(1))
    got = await coord.receive(RECIPIENT)
    assert got is not None
    await coord.ack(RECIPIENT, got.token)
    await coordination_redis.xadd(stream, broken("missing_x", "orphan-1"))
    # reserved by a client that then died, without a lease
    await coordination_redis.xreadgroup(CONSUMER_GROUP, "crashed", {stream: ">"}, count=1)
    await asyncio.sleep(0.3)
    assert await coord.recover_pending(RECIPIENT) == 1
    [letter] = await coord.dead_letters(RECIPIENT)
    assert isinstance(letter, UndecodableDeadLetter)
    assert letter.message_id == "orphan-1"
    assert (await coord.queue_stats(RECIPIENT)).unsettled == 0


@pytest.mark.parametrize("operation", ["receive", "recover", "stats"])
async def test_a_missing_group_is_recreated_without_skipping_or_redelivering(
    coordinator: RedisMessageCoordinator, coordination_redis, operation: str
):
    keys = coordinator.keys.queue(RECIPIENT)
    stream = keys.ready_for(MessagePriority.NORMAL)
    for n in range(4):
        await coordinator.send_message(SENDER, RECIPIENT, make_message(n))
    held = await coordinator.receive_batch(RECIPIENT, 2, visibility_timeout=300)
    assert await coordination_redis.xgroup_destroy(stream, CONSUMER_GROUP) == 1
    await coordinator.send_message(SENDER, RECIPIENT, make_message(4))

    if operation == "recover":
        assert await coordinator.recover_pending(RECIPIENT) == 0
    elif operation == "stats":
        stats = await coordinator.queue_stats(RECIPIENT)
        assert (stats.ready[MessagePriority.NORMAL], stats.leased) == (3, 2)
    got = await coordinator.receive_batch(RECIPIENT, 10)
    # the two leased ones are not delivered again; nothing undelivered is skipped
    assert [r.message.payload["n"] for r in got] == [2, 3, 4]
    stats = await coordinator.queue_stats(RECIPIENT)
    assert (stats.ready[MessagePriority.NORMAL], stats.leased) == (0, 5)
    assert await coordinator.ack_many(RECIPIENT, [r.token for r in held + got]) == [True] * 5
    stats = await coordinator.queue_stats(RECIPIENT)
    assert (stats.unsettled, stats.dead) == (0, 0)


async def test_an_ack_after_the_group_was_deleted_settles_without_redelivery(
    coordinator: RedisMessageCoordinator, coordination_redis
):
    keys = coordinator.keys.queue(RECIPIENT)
    stream = keys.ready_for(MessagePriority.NORMAL)
    for n in range(3):
        await coordinator.send_message(SENDER, RECIPIENT, make_message(n))
    held = await coordinator.receive_batch(RECIPIENT, 2, visibility_timeout=300)
    assert await coordination_redis.xgroup_destroy(stream, CONSUMER_GROUP) == 1
    assert await coordinator.ack_many(RECIPIENT, [held[0].token, held[0].token]) == [True, False]
    got = await coordinator.receive_batch(RECIPIENT, 10)
    assert [r.message.payload["n"] for r in got] == [2]
    assert await coordinator.ack_many(RECIPIENT, [held[1].token, got[0].token]) == [True, True]
    stats = await coordinator.queue_stats(RECIPIENT)
    assert (stats.unsettled, stats.leased, stats.dead) == (0, 0, 0)


async def test_an_ack_that_cannot_read_one_entry_changes_nothing_half_way(
    coordinator: RedisMessageCoordinator, coordination_redis
):
    # Issue 23: queue_ack removed each lease before its stream commands, so an error on a
    # later token (here a ready stream another client overwrote with a string) left the
    # earlier token's lease removed and its entry still leased in the stream.
    keys = coordinator.keys.queue(RECIPIENT)
    await coordinator.send_message(
        SENDER, RECIPIENT, make_message(1, priority=MessagePriority.HIGH)
    )
    await coordinator.send_message(SENDER, RECIPIENT, make_message(2))
    high, normal = await coordinator.receive_batch(RECIPIENT, 2, visibility_timeout=300)
    normal_stream = keys.ready_for(MessagePriority.NORMAL)
    await coordination_redis.delete(normal_stream)
    await coordination_redis.set(normal_stream, "not a stream")
    assert await coordinator.ack_many(RECIPIENT, [high.token, normal.token]) == [True, False]
    high_stream = keys.ready_for(MessagePriority.HIGH)
    assert await coordination_redis.xlen(high_stream) == 0
    assert await coordination_redis.xpending(high_stream, CONSUMER_GROUP) == {
        "pending": 0,
        "min": None,
        "max": None,
        "consumers": [],
    }
    # the token that could not be read keeps its lease: nothing of it changed
    assert await coordination_redis.zrange(keys.leases, 0, -1) == [normal.token.encode()]


async def test_a_missing_group_without_leases_delivers_everything(
    coordinator: RedisMessageCoordinator, coordination_redis
):
    stream = coordinator.keys.queue(RECIPIENT).ready_for(MessagePriority.NORMAL)
    for n in range(3):
        await coordinator.send_message(SENDER, RECIPIENT, make_message(n))
    assert await coordination_redis.xgroup_destroy(stream, CONSUMER_GROUP) == 1
    got = await coordinator.receive_batch(RECIPIENT, 10)
    assert [r.message.payload["n"] for r in got] == [0, 1, 2]


# --- dead letters: every one listed, replay keeps malformed ones, purge removes them ------


async def test_every_dead_letter_is_listed_and_replay_keeps_the_malformed(
    coordinator: RedisMessageCoordinator, coordination_redis
):
    keys = coordinator.keys.queue(RECIPIENT)
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    got = await coordinator.receive(RECIPIENT)
    assert got is not None
    await coordinator.nack(RECIPIENT, got.token, FailureType.PERMANENT, "bad")
    # a dead letter another client wrote, and a malformed one found on receive
    await coordination_redis.xadd(keys.dlq, {"i": "foreign-1", "m": "{}", "f": "permanent"})
    await coordination_redis.xadd(
        keys.ready_for(MessagePriority.HIGH), broken("empty_t", "malformed-1")
    )
    assert await coordinator.receive(RECIPIENT) is None

    letters = await coordinator.dead_letters(RECIPIENT)
    assert (await coordinator.queue_stats(RECIPIENT)).dead == len(letters) == 3
    good, foreign, malformed = letters
    assert isinstance(good, DeadLetter)
    assert isinstance(foreign, UndecodableDeadLetter)
    assert foreign.message_id == "foreign-1"
    assert foreign.reason.startswith("undecodable dead letter")
    assert isinstance(malformed, UndecodableDeadLetter)
    assert malformed.message_id == "malformed-1"

    # replay moves the good one and keeps the two it cannot deliver, by id or all
    assert await coordinator.replay_dead_letters(RECIPIENT, ["foreign-1", "malformed-1"]) == 0
    assert await coordinator.replay_dead_letters(RECIPIENT) == 1
    assert [d.dead_letter_id for d in await coordinator.dead_letters(RECIPIENT)] == [
        foreign.dead_letter_id,
        malformed.dead_letter_id,
    ]
    replayed = await coordinator.receive(RECIPIENT)
    assert replayed is not None
    assert replayed.message.message_id == good.message.message_id
    assert await coordinator.purge_dead_letters(RECIPIENT) == 2
    assert await coordinator.dead_letters(RECIPIENT) == []


# --- send refuses what receive could not decode ---------------------------------------


def nested(levels: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def with_payload(n: int, payload: dict[str, object]) -> AgentMessage:
    return make_message(n).model_copy(update={"payload": payload})


async def test_send_refuses_a_payload_receive_could_not_decode(
    coordinator: RedisMessageCoordinator,
):
    # Before: 200-255 levels were accepted and then dead-lettered on receive.
    for levels in (MAX_PAYLOAD_DEPTH + 1, 220):
        with pytest.raises(PayloadTooDeepError):
            await coordinator.send_message(SENDER, RECIPIENT, with_payload(levels, nested(levels)))
    with pytest.raises(NonFiniteNumberError):
        await coordinator.send_many([with_payload(1, {"x": math.nan})])
    with pytest.raises(MessageValidationError):
        await coordinator.send_message(SENDER, RECIPIENT, with_payload(2, {"x": math.inf}))
    assert (await coordinator.queue_stats(RECIPIENT)).unsettled == 0
    # the deepest payload allowed goes through, and comes back equal
    deepest = with_payload(3, nested(MAX_PAYLOAD_DEPTH))
    assert (await coordinator.send_message(SENDER, RECIPIENT, deepest)).delivered
    got = await coordinator.receive(RECIPIENT)
    assert got is not None
    assert got.message.payload == deepest.payload


def test_an_expiry_before_1970_is_refused():
    # Before: stored as a negative time, which the scripts read as "never expires".
    with pytest.raises(ValueError, match="after 1970"):
        make_message(1, expires_at=datetime(1969, 12, 31, tzinfo=UTC))
    with pytest.raises(ValueError, match="after 1970"):
        make_message(1, expires_at=datetime(1970, 1, 1, tzinfo=UTC))
    assert make_message(1, expires_at=datetime(1970, 1, 2, tzinfo=UTC)).expires_at is not None
