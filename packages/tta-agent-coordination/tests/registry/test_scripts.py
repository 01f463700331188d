"""The typed calls of the registry scripts: KEYS/ARGV layout, result parsing, undeclared sets."""

import asyncio
from datetime import UTC, datetime

import pytest

from tta_agent_coordination.errors import CoordinationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry.scripts import (
    DeregisterResult,
    HeartbeatResult,
    PeekResult,
    ReadResult,
    ReadRow,
    ReapResult,
    RegisterResult,
    ScriptCall,
    deregister_call,
    due_call,
    heartbeat_call,
    parse_deregister,
    parse_due,
    parse_heartbeat,
    parse_peek,
    parse_read,
    parse_reap,
    parse_register,
    peek_call,
    read_call,
    reap_call,
    register_call,
)
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.lua import ScriptSet

A = AgentId("planner", "p1")
B = AgentId("planner", "p2")
KEYS = KeySpace("pre")
T = "pre:{_registry}"
MS = 1_700_000_000_123
AT = datetime.fromtimestamp(MS / 1000, tz=UTC)


def _register(**changes) -> ScriptCall:
    values = {
        "owner": "tok",
        "name": "Planner",
        "status": "active",
        "capabilities_json": "[]",
        "capability_names": ["plan", "route"],
        "metadata_json": "{}",
        "ttl_ms": 30_000,
        "takeover": False,
        "retention_ms": 86_400_000,
        "events_max_len": 10_000,
        **changes,
    }
    return register_call(KEYS, A, **values)


# --- KEYS and ARGV ------------------------------------------------------------------------


def test_register_call_layout():
    call = _register(capability_sets=["route", "old"], takeover=True)
    assert call.script == "registry_register"
    assert call.keys == [
        f"{T}:agent:planner:p1",
        f"{T}:alive",
        f"{T}:events",
        f"{T}:type:planner",
        f"{T}:cap:plan",
        f"{T}:cap:route",
        f"{T}:cap:old",
    ]
    assert call.args == [
        "planner:p1",
        "planner",
        "tok",
        "Planner",
        "active",
        "[]",
        "plan route",
        "{}",
        30_000,
        1,
        86_400_000,
        10_000,
        "plan route old",
    ]


def test_heartbeat_and_deregister_call_layouts():
    beat = heartbeat_call(
        KEYS,
        A,
        owner="tok",
        ttl_ms=300,
        retention_ms=900,
        events_max_len=0,
        capability_sets=["plan"],
        status=None,
        snapshot_json='{"load":1}',
        state_json=None,
    )
    lease_keys = [
        f"{T}:agent:planner:p1",
        f"{T}:alive",
        f"{T}:events",
        f"{T}:state:planner:p1",
        f"{T}:type:planner",
        f"{T}:cap:plan",
    ]
    assert beat == ScriptCall(
        "registry_heartbeat",
        lease_keys,
        ["planner:p1", "tok", 300, "", 1, '{"load":1}', 0, "", 900, 0, "plan"],
    )
    gone = deregister_call(
        KEYS,
        A,
        owner="",
        force=True,
        retention_ms=900,
        events_max_len=5,
        reason="evicted",
        capability_sets=["plan"],
        state_json='{"n":1}',
    )
    assert gone == ScriptCall(
        "registry_deregister",
        lease_keys,
        ["planner:p1", "", 1, 1, '{"n":1}', 900, 5, "evicted", "plan"],
    )


def test_peek_read_due_and_reap_call_layouts():
    assert peek_call(KEYS, A) == ScriptCall(
        "registry_peek", [f"{T}:alive", f"{T}:state:planner:p1"], ["planner:p1"]
    )
    assert read_call(KEYS, [A, B], alive_only=True, listed_only=False) == ScriptCall(
        "registry_read",
        [f"{T}:alive", f"{T}:agent:planner:p1", f"{T}:agent:planner:p2"],
        [1, 0, "planner:p1", "planner:p2"],
    )
    assert due_call(KEYS, 7) == ScriptCall("registry_due", [f"{T}:alive"], [7])
    reap = reap_call(
        KEYS, [(A, ["plan", "route"]), (B, [])], retention_ms=9, events_max_len=3, strays=["x"]
    )
    assert reap == ScriptCall(
        "registry_reap",
        [
            f"{T}:alive",
            f"{T}:events",
            f"{T}:agent:planner:p1",
            f"{T}:type:planner",
            f"{T}:cap:plan",
            f"{T}:cap:route",
            f"{T}:agent:planner:p2",
            f"{T}:type:planner",
        ],
        [9, 3, 2, "planner:p1", "plan route", "planner:p2", "", "x"],
    )


# --- parsing what the scripts return ------------------------------------------------------


@pytest.mark.parametrize("wire", [bytes, str], ids=["bytes", "str"])
def test_parse_results_whether_decoded_or_not(wire):
    def w(value: str):
        return value.encode() if wire is bytes else value

    assert parse_register([w("ok"), MS, w(str(MS + 1000)), w("expired")]) == RegisterResult(
        "ok", AT, datetime.fromtimestamp((MS + 1000) / 1000, tz=UTC), replaced="expired"
    )
    assert parse_register([w("held"), 2500]) == RegisterResult("held", held_for_ms=2500)
    assert parse_register([w("undeclared"), w("a b")]) == RegisterResult(
        "undeclared", undeclared=("a", "b")
    )
    assert parse_heartbeat([w("ok"), MS - 5, MS, 1]) == HeartbeatResult(
        "ok", AT, status_changed=True
    )
    assert parse_heartbeat([w("ok"), MS - 5, MS, 0]).status_changed is False
    for outcome in ("gone", "replaced", "expired"):
        assert parse_heartbeat([w(outcome)]) == HeartbeatResult(outcome)
    assert parse_heartbeat([w("undeclared"), w("x")]).undeclared == ("x",)
    assert parse_deregister([w("ok"), 1]) == DeregisterResult("ok", was_alive=True)
    assert parse_deregister([w("ok"), 0]) == DeregisterResult("ok", was_alive=False)
    assert parse_deregister([w("gone")]) == DeregisterResult("gone")
    assert parse_deregister([w("replaced")]) == DeregisterResult("replaced")
    assert parse_deregister([w("undeclared"), w("p q")]).undeclared == ("p", "q")
    assert parse_peek([1500, 1, w('{"n":1}')]) == PeekResult(1500, '{"n":1}')
    assert parse_peek([0, 0, w("")]) == PeekResult(0, None)
    assert parse_due([w("planner:p1"), w("x")]) == ("planner:p1", "x")
    assert parse_reap([1, w("planner:p1")]) == ReapResult((A,), skipped=True)
    assert parse_reap([0]) == ReapResult((), skipped=False)
    read = parse_read(
        [
            *(MS, w("planner:p1"), w(str(MS + 1)), [w("name"), w("P"), w("hb"), w(str(MS))]),
            *(w("planner:p2"), w(""), []),
        ]
    )
    assert read == ReadResult(
        MS,
        (
            ReadRow("planner:p1", float(MS + 1), {"name": w("P"), "hb": w(str(MS))}),
            ReadRow("planner:p2", None, {}),
        ),
    )
    assert parse_read([MS]) == ReadResult(MS, ())


@pytest.mark.parametrize(
    ("parse", "raw"),
    [
        (parse_register, ["gone"]),
        (parse_heartbeat, ["held", 1]),
        (parse_deregister, ["expired"]),
    ],
)
def test_an_unknown_outcome_is_an_error(parse, raw):
    with pytest.raises(CoordinationError, match="unexpected result of registry_"):
        parse(raw)


# --- undeclared capability sets, on Redis -------------------------------------------------


async def _run(redis, call: ScriptCall):
    return await ScriptSet(redis)[call.script](keys=call.keys, args=call.args)


async def test_a_script_meeting_undeclared_sets_changes_nothing(coordination_redis, key_prefix):
    keys = KeySpace(key_prefix)
    redis = coordination_redis

    def register(owner: str, names: list[str], declared: list[str], takeover: bool = False):
        return register_call(
            keys,
            A,
            owner=owner,
            name=owner,
            status="active",
            capabilities_json="[]",
            capability_names=names,
            metadata_json="{}",
            ttl_ms=300,
            takeover=takeover,
            retention_ms=60_000,
            events_max_len=100,
            capability_sets=declared,
        )

    first = parse_register(await _run(redis, register("one", ["plan", "route"], [])))
    assert first.outcome == "ok"
    assert first.replaced == "none"
    # Another owner takes over, declaring only its own capability: refused, nothing changed.
    refused = parse_register(await _run(redis, register("two", ["fly"], [], takeover=True)))
    assert refused == RegisterResult("undeclared", undeclared=("plan", "route"))
    assert await redis.hget(keys.registry_agent(A), "owner") == b"one"
    assert await redis.smembers(keys.registry_capability("plan")) == {b"planner:p1"}
    assert await redis.exists(keys.registry_capability("fly")) == 0
    assert await redis.xlen(keys.registry_events) == 1
    taken = parse_register(
        await _run(redis, register("two", ["fly"], ["plan", "route"], takeover=True))
    )
    assert taken.outcome == "ok"
    assert taken.replaced == "alive"
    assert await redis.exists(keys.registry_capability("plan")) == 0
    assert await redis.smembers(keys.registry_capability("fly")) == {b"planner:p1"}

    def deregister(declared: list[str]):
        return deregister_call(
            keys,
            A,
            owner="",
            force=True,
            retention_ms=60_000,
            events_max_len=100,
            reason="evicted",
            capability_sets=declared,
        )

    assert parse_deregister(await _run(redis, deregister([]))) == DeregisterResult(
        "undeclared", undeclared=("fly",)
    )
    assert await redis.exists(keys.registry_agent(A)) == 1
    assert parse_deregister(await _run(redis, deregister(["fly"]))) == DeregisterResult(
        "ok", was_alive=True
    )
    assert await redis.exists(keys.registry_agent(A), keys.registry_capability("fly")) == 0


async def test_an_expiring_heartbeat_meeting_undeclared_sets_writes_no_state(
    coordination_redis, key_prefix
):
    keys = KeySpace(key_prefix)
    redis = coordination_redis
    call = register_call(
        keys,
        A,
        owner="tok",
        name="p",
        status="active",
        capabilities_json="[]",
        capability_names=["plan"],
        metadata_json="{}",
        ttl_ms=100,
        takeover=False,
        retention_ms=60_000,
        events_max_len=100,
    )
    assert parse_register(await _run(redis, call)).outcome == "ok"
    await asyncio.sleep(0.15)

    def beat(declared: list[str]):
        return heartbeat_call(
            keys,
            A,
            owner="tok",
            ttl_ms=100,
            retention_ms=60_000,
            events_max_len=100,
            capability_sets=declared,
            state_json='{"n":1}',
        )

    assert parse_heartbeat(await _run(redis, beat([]))) == HeartbeatResult(
        "undeclared", undeclared=("plan",)
    )
    assert await redis.exists(keys.registry_state(A)) == 0
    assert await redis.zscore(keys.registry_liveness, str(A)) is not None
    assert parse_heartbeat(await _run(redis, beat(["plan"]))) == HeartbeatResult("expired")
    assert await redis.get(keys.registry_state(A)) == b'{"n":1}'
    assert await redis.zscore(keys.registry_liveness, str(A)) is None
    assert await redis.exists(keys.registry_capability("plan")) == 0


async def test_reap_skips_a_candidate_with_undeclared_sets(coordination_redis, key_prefix):
    keys = KeySpace(key_prefix)
    redis = coordination_redis
    for agent_id, names in ((A, ["plan"]), (B, [])):
        call = register_call(
            keys,
            agent_id,
            owner="tok",
            name="p",
            status="active",
            capabilities_json="[]",
            capability_names=names,
            metadata_json="{}",
            ttl_ms=50,
            takeover=False,
            retention_ms=60_000,
            events_max_len=100,
        )
        assert parse_register(await _run(redis, call)).outcome == "ok"
    await asyncio.sleep(0.1)
    assert parse_due(await _run(redis, due_call(keys, 10))) == (str(A), str(B))
    reap = reap_call(keys, [(A, []), (B, [])], retention_ms=60_000, events_max_len=100)
    assert parse_reap(await _run(redis, reap)) == ReapResult((B,), skipped=True)
    assert parse_due(await _run(redis, due_call(keys, 10))) == (str(A),)
    reap = reap_call(keys, [(A, ["plan"])], retention_ms=60_000, events_max_len=100)
    assert parse_reap(await _run(redis, reap)) == ReapResult((A,), skipped=False)
    assert parse_due(await _run(redis, due_call(keys, 10))) == ()


async def test_strays_in_the_liveness_set_are_dropped_and_not_reported(
    make_registry, coordination_redis
):
    registry = make_registry()
    liveness = registry.keys.registry_liveness
    # Not written by this library: no agent id, so no record or index to touch.
    await coordination_redis.zadd(liveness, {"garbage": 1, "planner": 1, "x:y:z": 1})
    await coordination_redis.zadd(liveness, {"future-stray": 2**52})
    assert await registry.list_registered() == []
    assert await registry.reap_expired() == []
    assert await coordination_redis.zrange(liveness, 0, -1) == [b"future-stray"]
