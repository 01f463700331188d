"""The typed script calls (``redis/scripts/<name>.py``) agree with their Lua scripts.

Each call builds KEYS and ARGV from named parameters, starting ARGV with the consumer
group and consumer name of ``redis/keys.py`` (the scripts hard-code neither), and parses
the script's outcome into named fields.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tta_agent_coordination.models import AgentId, FailureType, MessagePriority
from tta_agent_coordination.redis.codec import decode_delivery, envelope_json, priority_index
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.redis.keys import CONSUMER_GROUP, CONSUMER_NAME, KeySpace
from tta_agent_coordination.redis.lua import ScriptCall, ScriptSet, script_source
from tta_agent_coordination.redis.scripts import (
    queue_ack,
    queue_cancel,
    queue_dlq_purge,
    queue_dlq_reject,
    queue_dlq_replay,
    queue_extend,
    queue_nack,
    queue_receive,
    queue_recover,
    queue_restore,
    queue_send,
    queue_stats,
    reply_push,
)
from tta_agent_coordination.redis.scripts.queue_common import (
    ARGV_HEAD,
    REQUEUED,
    MovedEntry,
    moved_entries,
)
from tta_agent_coordination.redis.scripts.queue_receive import Delivery
from tta_agent_coordination.redis.scripts.queue_restore import RestoreItem
from tta_agent_coordination.redis.scripts.queue_send import SendItem

from .conftest import RECIPIENT, SENDER, make_message

KEYS = KeySpace("t").queue(AgentId("w", "1"))

QUEUE_CALLS: dict[str, ScriptCall[Any]] = {
    "queue_send": queue_send.call(KEYS, queue_size=5, items=[SendItem(2, "m1", "{}", 0)]),
    "queue_receive": queue_receive.call(
        KEYS,
        count=1,
        visibility_ms=2,
        retry_attempts=3,
        dlq_max_len=4,
        dedupe_window_ms=5,
        maintenance_batch=6,
    ),
    "queue_ack": queue_ack.call(KEYS, dedupe_window_ms=7, tokens=["1-1-0"]),
    "queue_nack": queue_nack.call(
        KEYS,
        token="1-1-0",
        failure="transient",
        error="e",
        retry_attempts=1,
        backoff_base_ms=2,
        backoff_factor=3,
        backoff_max_ms=4,
        jitter_multiplier=1.5,
        dlq_max_len=6,
        dedupe_window_ms=7,
    ),
    "queue_extend": queue_extend.call(KEYS, token="1-1-0", lease_ms=9),
    "queue_recover": queue_recover.call(
        KEYS,
        retry_attempts=1,
        dlq_max_len=2,
        dedupe_window_ms=3,
        orphan_idle_ms=4,
        limit=5,
        force=True,
    ),
    "queue_restore": queue_restore.call(
        KEYS, [RestoreItem(1, "m1", "{}", 2, "e", 0, 123)], dlq_max_len=10, dedupe_window_ms=0
    ),
    "queue_dlq_replay": queue_dlq_replay.call(KEYS, cursor="-", batch=10, message_ids=None),
    "queue_stats": queue_stats.call(KEYS),
    "queue_dlq_reject": queue_dlq_reject.call(
        KEYS, [("2-1-0", "bad envelope")], dlq_max_len=7, dedupe_window_ms=8
    ),
    "queue_cancel": queue_cancel.call(KEYS, "m1"),
}


# --- arguments ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(QUEUE_CALLS))
def test_every_queue_script_gets_the_group_and_consumer_from_keys_py(name: str) -> None:
    call = QUEUE_CALLS[name]
    assert call.name == name
    if name == "queue_send":  # pre-encoded, and without the lessee keys it never reads
        sent = tuple(k.decode() if isinstance(k, bytes) else k for k in call.keys)
        assert sent == KEYS.all_keys[: queue_send.SEND_KEYS]
        assert all(isinstance(k, bytes) for k in call.keys)
    else:
        assert tuple(call.keys) == KEYS.all_keys
    assert tuple(call.argv[:2]) == ARGV_HEAD
    assert [head.decode() for head in ARGV_HEAD] == [CONSUMER_GROUP, CONSUMER_NAME]
    source = script_source(name)
    assert "local GROUP = ARGV[1]" in source
    assert "local CONSUMER = ARGV[2]" in source
    # Neither name is written in any script: keys.py is their one definition.
    assert not re.search(r"""['"](workers|lease)['"]""", source)


def test_queue_send_reads_no_key_it_is_not_sent() -> None:
    # queue_send gets KEYS 1..SEND_KEYS only: neither its own text nor a helper it calls
    # may read a later key (Lua would see nil, and Cluster would not route by it).
    common = script_source("queue_common")
    own = script_source("queue_send").removeprefix(common)
    helpers = set(re.findall(r"^local function (\w+)", common, re.M))
    called = {h for h in helpers if re.search(rf"\b{h}\(", own)}
    assert {"now_ms", "schedule_delayed"} <= called
    bodies = [own] + [
        re.search(rf"^local function {h}\(.*?^end$", common, re.M | re.S).group(0)  # pyright: ignore[reportOptionalMemberAccess]
        for h in called
    ]
    used = {int(n) for body in bodies for n in re.findall(r"KEYS\[(\d+)\]", body)}
    assert used
    assert max(used) <= queue_send.SEND_KEYS
    # ...and the other queue scripts do read beyond it, so the cut is not a no-op.
    assert re.search(r"KEYS\[1[01]\]", common)


def test_queue_send_encodes_its_keys_once_per_queue() -> None:
    first = queue_send.call(KEYS, queue_size=5, items=[SendItem(2, "m1", "{}", 0)])
    again = queue_send.call(KEYS, queue_size=5, items=[SendItem(1, "m2", "{}", 0)])
    assert first.keys is again.keys
    assert all(isinstance(k, bytes) for k in first.keys)
    assert queue_send.call(KEYS, queue_size=6, items=[]).argv == [*ARGV_HEAD, b"6"]


def test_arguments_follow_the_head_in_the_documented_order() -> None:
    assert QUEUE_CALLS["queue_send"].argv[2:] == [b"5", 2, "m1", "{}", 0, 0, 0]
    later = queue_send.call(KEYS, queue_size=5, items=[SendItem(2, "m1", "{}", 0, 250, 9)])
    assert later.argv[2:] == [b"5", 2, "m1", "{}", 0, 250, 9]
    assert QUEUE_CALLS["queue_receive"].argv[2:] == [1, 2, 3, 4, 5, 6, ""]
    named = queue_receive.call(
        KEYS,
        count=1,
        visibility_ms=2,
        retry_attempts=3,
        dlq_max_len=4,
        dedupe_window_ms=5,
        maintenance_batch=6,
        lessee="w:1",
    )
    assert named.argv[-1] == "w:1"
    assert QUEUE_CALLS["queue_ack"].argv[2:] == [7, "1-1-0"]
    assert QUEUE_CALLS["queue_nack"].argv[2:] == ["1-1-0", "transient", "e", 1, 2, 3, 4, 1.5, 6, 7]
    assert QUEUE_CALLS["queue_extend"].argv[2:] == ["1-1-0", 9]
    assert QUEUE_CALLS["queue_recover"].argv[2:] == [1, 2, 3, 4, 5, 1, ""]
    assert QUEUE_CALLS["queue_restore"].argv[2:] == [10, 0, 1, "m1", "{}", 2, "e", 0, 123, 0, ""]
    assert QUEUE_CALLS["queue_cancel"].argv[2:] == ["m1"]
    assert QUEUE_CALLS["queue_dlq_replay"].argv[2:] == ["-", 10, "0"]
    assert QUEUE_CALLS["queue_stats"].argv[2:] == []
    assert QUEUE_CALLS["queue_dlq_reject"].argv[2:] == [7, 8, "2-1-0", "bad envelope"]
    replay_some = queue_dlq_replay.call(KEYS, cursor="5-0", batch=3, message_ids=["a", "b"])
    assert replay_some.argv[2:] == ["5-0", 3, "1", "a", "b"]
    recover = queue_recover.call(
        KEYS,
        retry_attempts=1,
        dlq_max_len=2,
        dedupe_window_ms=3,
        orphan_idle_ms=4,
        limit=5,
        force=False,
        lessee="w:1",
    )
    assert recover.argv[-2:] == [0, "w:1"]


def test_the_scripts_outside_the_queue_family_take_their_own_keys() -> None:
    purge = queue_dlq_purge.call(KEYS)
    assert (purge.name, purge.keys, purge.argv) == ("queue_dlq_purge", [KEYS.dlq], [])
    push = reply_push.call("t:{_reply:x}:inbox", envelope="{}", ttl_ms="1500", max_replies=10)
    assert (push.name, push.keys, push.argv) == (
        "reply_push",
        ["t:{_reply:x}:inbox"],
        ["{}", "1500", 10],
    )
    assert push.parse(1) is None


# --- outcomes ---------------------------------------------------------------------------


def test_outcomes_are_parsed_into_named_fields() -> None:
    receive = QUEUE_CALLS["queue_receive"].parse(
        [[["2-1-0", b"{}", 1, b"", b"100", 200]], 150, [b"0-0"] * 3, -1, 2, 1, [], 4, b"7-0"]
    )
    assert receive == queue_receive.ReceiveOutcome(
        deliveries=[["2-1-0", b"{}", 1, b"", b"100", 200]],
        server_now_ms=150,
        last_ids=[b"0-0"] * 3,
        wake_at_ms=-1,
        recovered=2,
        expired=1,
        moved=[],
        malformed=4,
        wake_id=b"7-0",
    )
    sent = QUEUE_CALLS["queue_send"].parse([[1, 0, -1, 2], 1_700_000_000_000, [0, 0, 0, 5]])
    assert sent == queue_send.SendOutcome(
        codes=[1, 0, -1, 2], server_now_ms=1_700_000_000_000, dues=[0, 0, 0, 5]
    )
    assert queue_cancel.call(KEYS, "m").parse([1, b"100"]) == queue_cancel.CancelOutcome(True, 100)
    assert queue_cancel.call(KEYS, "m").parse([0]) == queue_cancel.CancelOutcome(False, 0)
    acked = QUEUE_CALLS["queue_ack"].parse([[1, 0], [[b"m1", b"100", 2]]])
    assert acked.flags == [True, False]
    assert queue_ack.settled_entries(acked.acked) == [
        queue_ack.SettledEntry(message_id="m1", first_enqueued_ms=100, deliveries=2)
    ]
    nack = QUEUE_CALLS["queue_nack"].parse([2, b"m1", b"100", 4])
    assert nack == queue_nack.NackOutcome(
        code=queue_nack.DEAD_LETTERED, message_id="m1", first_enqueued_ms=100, deliveries=4
    )
    assert QUEUE_CALLS["queue_nack"].parse([0]).code == queue_nack.UNKNOWN_TOKEN
    assert QUEUE_CALLS["queue_extend"].parse(0) == 0
    recover = QUEUE_CALLS["queue_recover"].parse([1, 2, 3, 0, 1, []])
    assert recover == queue_recover.RecoverOutcome(
        requeued=1, dead_lettered=2, promoted=3, more=False, removed=True, moved=[]
    )
    assert QUEUE_CALLS["queue_restore"].parse([1, 0]) == [True, False]
    replay = QUEUE_CALLS["queue_dlq_replay"].parse([2, b"9-0", [b"a", "b"], 77, 1])
    assert replay == queue_dlq_replay.ReplayOutcome(
        replayed=2, next_cursor="9-0", message_ids=["a", "b"], server_now_ms=77, refused=1
    )
    reject = QUEUE_CALLS["queue_dlq_reject"].parse([1, []])
    assert reject == queue_dlq_reject.RejectOutcome(dead_lettered=1, moved=[])
    stats = QUEUE_CALLS["queue_stats"].parse([1, 2, 3, 4, 5, 6, 70, 0, 90, b"100"])
    assert stats == queue_stats.QueueCounts(
        ready_high=1,
        ready_normal=2,
        ready_low=3,
        leased=4,
        delayed=5,
        dead=6,
        oldest_ready_high_ms=70,
        oldest_ready_normal_ms=0,
        oldest_ready_low_ms=90,
        server_now_ms=100,
    )
    assert queue_stats.oldest_ready_ages(stats) == (0.03, 0.0, 0.01)
    assert queue_dlq_purge.call(KEYS).parse(b"3") == 3


def test_moved_entries_are_typed() -> None:
    raw = [
        [b"m1", b"100", 2, 1, b"lease expired", b"timeout"],
        ["m2", 200, 4, 2, "malformed entry: x", "malformed"],
    ]
    assert moved_entries(raw) == [
        MovedEntry("m1", 100, 2, REQUEUED, "lease expired", FailureType.TIMEOUT),
        MovedEntry("m2", 200, 4, 2, "malformed entry: x", FailureType.MALFORMED),
    ]


def test_decode_delivery_reads_the_layout_the_receive_outcome_declares() -> None:
    message = make_message(7, priority=MessagePriority.HIGH)
    delivery = Delivery(
        token="1-5-0",
        envelope=envelope_json(message),
        deliveries=3,
        last_error="boom",
        first_enqueued_ms=1_000,
        lease_deadline_ms=61_000,
    )
    received = decode_delivery(delivery)
    assert received.token == "1-5-0"
    assert received.message == message
    assert received.attempts == 3
    assert received.queue_message.last_error == "boom"
    assert received.queue_message.enqueued_at == "1970-01-01T00:00:01+00:00"
    assert received.visibility_deadline == "1970-01-01T00:01:01+00:00"


# --- against the scripts themselves -------------------------------------------------------


async def test_typed_calls_run_against_the_scripts(coordination_redis, key_prefix) -> None:
    scripts = ScriptSet(coordination_redis)
    keys = KeySpace(key_prefix).queue(RECIPIENT)
    message = make_message(1)
    item = SendItem(priority_index(message.priority), message.message_id, envelope_json(message), 0)
    sent = await scripts.call(queue_send.call(keys, queue_size=10, items=[item, item]))
    assert sent.codes == [queue_send.ENQUEUED, queue_send.DUPLICATE]
    assert sent.server_now_ms > 0
    stats = await scripts.call(queue_stats.call(keys))
    assert stats[:6] == (0, 1, 0, 0, 0, 0)
    # The one ready message entered its stream at the send, on the same server clock.
    assert stats.oldest_ready_high_ms == stats.oldest_ready_low_ms == 0
    assert sent.server_now_ms <= stats.oldest_ready_normal_ms <= stats.server_now_ms
    outcome = await scripts.call(
        queue_receive.call(
            keys,
            count=5,
            visibility_ms=30_000,
            retry_attempts=3,
            dlq_max_len=100,
            dedupe_window_ms=0,
            maintenance_batch=10,
        )
    )
    [raw] = outcome.deliveries
    delivery = Delivery._make(raw)
    assert int(delivery.first_enqueued_ms) == sent.server_now_ms
    assert delivery.deliveries == 1
    assert delivery.lease_deadline_ms == outcome.server_now_ms + 30_000
    assert (outcome.recovered, outcome.expired, outcome.moved) == (0, 0, [])
    token = decode_delivery(raw).token
    assert await scripts.call(queue_extend.call(keys, token=token, lease_ms=1)) > 0
    acked = await scripts.call(queue_ack.call(keys, dedupe_window_ms=0, tokens=[token, token]))
    assert acked.flags == [True, False]
    [entry] = queue_ack.settled_entries(acked.acked)
    assert (entry.message_id, entry.first_enqueued_ms, entry.deliveries) == (
        message.message_id,
        sent.server_now_ms,
        1,
    )


async def test_pipelined_calls_reload_the_script_after_a_cache_flush(
    coordination_redis, key_prefix
) -> None:
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    others = [AgentId("other", str(n)) for n in range(3)]
    first = [make_message(n, recipient=a) for n, a in enumerate(others)]
    assert all(r.delivered for r in await coord.send_many(first))
    # Several queues in one batch go through the pipeline (plain EVALSHA, no SCRIPT
    # EXISTS): after a flush every call misses the script and is sent again.
    await coordination_redis.script_flush()
    again = [make_message(10 + n, recipient=a) for n, a in enumerate(others)]
    again.append(make_message(20, recipient=RECIPIENT))  # a new queue: index update too
    assert all(r.delivered and not r.duplicate for r in await coord.send_many(again))
    assert set(await coord.known_queues()) == {*others, RECIPIENT}
    assert SENDER not in await coord.known_queues()
    await coord.aclose()
