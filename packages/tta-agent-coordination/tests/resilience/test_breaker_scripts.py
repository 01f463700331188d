"""The typed calls of the breaker Lua scripts: their ARGV match the scripts, replies parse.

``redis/breaker_scripts.py`` declares each script's KEYS, ARGV and reply once; these
tests hold the scripts to that declaration and run each call on Redis.
"""

from __future__ import annotations

import re

import pytest
import redis.asyncio as aioredis

from tta_agent_coordination.redis.breaker_scripts import (
    AcquireReply,
    BreakerReply,
    BreakerScriptCall,
    breaker_acquire,
    breaker_record,
    breaker_reset,
)
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.lua import ScriptSet, script_source
from tta_agent_coordination.resilience.breaker_state import CircuitState, Outcome

RECORD_DEFAULTS = {
    "admitted_generation": None,
    "outcome": Outcome.FAILURE,
    "probe": False,
    "failure_threshold": 1,
    "window_size": None,
    "failure_rate_threshold": 0.5,
    "window_minimum_calls": 1,
    "success_threshold": 1,
    "timeout_ms": 60_000,
    "timeout_multiplier": 2.0,
    "max_timeout_ms": 60_000,
    "ttl_ms": 120_000,
}

CALLS = [
    breaker_acquire("k", half_open_max_calls=1, probe_lease_ms=60_000, ttl_ms=120_000),
    breaker_record("k", **RECORD_DEFAULTS),
    breaker_reset("k", ttl_ms=120_000),
]


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.script)
def test_each_call_passes_exactly_the_argv_its_script_reads(call: BreakerScriptCall) -> None:
    source = script_source(call.script)
    argv = {int(n) for n in re.findall(r"ARGV\[(\d+)\]", source)}
    keys = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", source)}
    assert argv == set(range(1, len(call.args) + 1))
    assert keys == {1}
    assert call.keys == ("k",)


def test_record_encodes_its_arguments_as_the_script_reads_them() -> None:
    call = breaker_record(
        "k",
        **{**RECORD_DEFAULTS, "outcome": Outcome.NEUTRAL, "probe": True, "window_size": 8},
    )
    assert call.args == ("", "n", 1, 1, 8, "0.5", 1, 1, 60_000, "2.0", 60_000, 120_000)
    current = breaker_record("k", **{**RECORD_DEFAULTS, "admitted_generation": 7})
    assert current.args[:3] == (7, "f", 0)
    assert current.args[4] == 0  # no window


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([b"open", 3, 0, 1500], BreakerReply(CircuitState.OPEN, 3, 0, 1500)),
        (["closed", "2", "1", "-1"], BreakerReply(CircuitState.CLOSED, 2, 1, None)),
        ([b"half_open", 4, 0, -1, 1, 1], BreakerReply(CircuitState.HALF_OPEN, 4, 0, None)),
        (["open", 1, 0, 0], BreakerReply(CircuitState.OPEN, 1, 0, 0)),
    ],
)
def test_the_common_reply_parses(raw: list[object], expected: BreakerReply) -> None:
    assert BreakerReply.parse(raw) == expected


def test_the_acquire_reply_parses() -> None:
    reply = AcquireReply.parse([b"half_open", 4, 0, -1, 1, 0])
    assert reply == AcquireReply(BreakerReply(CircuitState.HALF_OPEN, 4, 0, None), True, False)
    assert AcquireReply.parse(["closed", 0, 0, -1, "0", "1"]).probe is True


async def test_each_call_runs_on_redis(coordination_redis: aioredis.Redis, key_prefix: str) -> None:
    scripts = ScriptSet(coordination_redis)
    key = KeySpace(key_prefix).breaker_state("typed")
    acquire = breaker_acquire(key, half_open_max_calls=1, probe_lease_ms=60_000, ttl_ms=120_000)
    admitted = AcquireReply.parse(await acquire.run(scripts))
    assert admitted == AcquireReply(BreakerReply(CircuitState.CLOSED, 0, 0, None), True, False)
    failed = breaker_record(key, **{**RECORD_DEFAULTS, "admitted_generation": 0})
    opened = BreakerReply.parse(await failed.run(scripts))
    assert (opened.state, opened.generation, opened.failures) == (CircuitState.OPEN, 1, 0)
    assert opened.retry_after_ms is not None
    assert 59_000 <= opened.retry_after_ms <= 60_000
    refused = AcquireReply.parse(await acquire.run(scripts))
    assert (refused.allowed, refused.probe, refused.breaker.state) == (
        False,
        False,
        CircuitState.OPEN,
    )
    stale = BreakerReply.parse(await failed.run(scripts))  # admitted in generation 0
    assert stale == opened._replace(retry_after_ms=stale.retry_after_ms)
    reset = BreakerReply.parse(await breaker_reset(key, ttl_ms=120_000).run(scripts))
    assert reset == BreakerReply(CircuitState.CLOSED, 2, 0, None)
    assert 0 < await coordination_redis.pttl(key) <= 120_000
