"""``ownership``: what a registry knows at once about a registration, after a stall too.

A stall is simulated the way it happens: the event loop is blocked (``time.sleep``) past
the TTL, so no heartbeat runs and the registration expires on the server.
"""

import asyncio
import time

import pytest

from tta_agent_coordination.errors import StaleRegistrationError
from tta_agent_coordination.interfaces import Ownership
from tta_agent_coordination.models import AgentId

from .conftest import FlakyGuard

A = AgentId("worker", "a")
TTL_S = 0.6
INTERVAL_S = TTL_S / 3
SLACK_S = 0.5
"""Scheduling slack of a loaded CI machine."""


def freeze(seconds: float) -> None:
    """Block the event loop, as SIGSTOP or a long GC pause would."""
    time.sleep(seconds)


async def until(ownership: Ownership, registry, limit_s: float) -> float:
    """Seconds until ``registry.ownership(A)`` is ``ownership``; fails after ``limit_s``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while registry.ownership(A) is not ownership:
        assert loop.time() - start < limit_s, f"still {registry.ownership(A)} after {limit_s}s"
        await asyncio.sleep(0.005)
    return loop.time() - start


async def test_held_while_renewed_lost_when_never_held_or_deregistered(make_registry):
    registry = make_registry(heartbeat_ttl_s=TTL_S)
    assert registry.ownership(A) is Ownership.LOST
    await registry.register_id(A)
    registry.start_heartbeats()
    assert registry.ownership(A) is Ownership.HELD
    await asyncio.sleep(TTL_S * 2)  # renewed all along
    assert registry.ownership(A) is Ownership.HELD
    await registry.deregister(A)
    assert registry.ownership(A) is Ownership.LOST


async def test_without_heartbeats_it_turns_unverified_before_the_ttl_runs_out(make_registry):
    registry = make_registry(heartbeat_ttl_s=TTL_S)
    started = time.monotonic()
    await registry.register_id(A)
    waited = await until(Ownership.UNVERIFIED, registry, limit_s=TTL_S + SLACK_S)
    # Before the server expires it, with a margin for a request in flight.
    assert time.monotonic() - started < TTL_S
    assert waited > TTL_S / 2
    assert [r.alive for r in await registry.list_registered()] == [True]


async def test_after_a_stall_it_is_unverified_then_lost_if_another_took_over(make_registry):
    old = make_registry(heartbeat_ttl_s=TTL_S)
    new = make_registry(heartbeat_ttl_s=TTL_S)
    await old.register_id(A)  # heartbeats held back until the takeover is done:
    freeze(TTL_S + 0.2)  # the old owner's process freezes past the TTL
    assert old.ownership(A) is Ownership.UNVERIFIED  # at once, before any I/O
    await new.register_id(A)  # the expired registration is taken over
    old.start_heartbeats()
    waited = await until(Ownership.LOST, old, limit_s=INTERVAL_S + SLACK_S)
    assert waited < INTERVAL_S + SLACK_S
    assert old.held() == []
    assert new.ownership(A) is Ownership.HELD


async def test_after_a_stall_nobody_took_over_it_is_verified_and_held_again(make_registry):
    registry = make_registry(heartbeat_ttl_s=TTL_S)
    await registry.register_id(A)
    registry.start_heartbeats()
    freeze(TTL_S + 0.2)
    assert registry.ownership(A) is Ownership.UNVERIFIED
    # Its heartbeat finds it expired, nobody holds it: it registers again (auto_reregister).
    await until(Ownership.HELD, registry, limit_s=INTERVAL_S + SLACK_S)
    [record] = await registry.list_registered()
    assert record.alive


async def test_a_registration_lost_to_a_takeover_is_lost_after_the_next_beat(make_registry):
    old = make_registry(heartbeat_ttl_s=TTL_S)
    new = make_registry(heartbeat_ttl_s=TTL_S)
    await old.register_id(A)
    old.start_heartbeats()
    await new.register_id(A, takeover=True)
    waited = await until(Ownership.LOST, old, limit_s=INTERVAL_S + SLACK_S)
    assert waited <= INTERVAL_S + SLACK_S


async def test_heartbeats_failing_past_the_ttl_make_it_unverified_until_one_succeeds(
    make_registry,
):
    # Redis "down" for every beat during more than the TTL, then back.
    guard = FlakyGuard("registry_heartbeat", failures=10**6)
    registry = make_registry(heartbeat_ttl_s=TTL_S, guard=guard)
    await registry.register_id(A)
    registry.start_heartbeats()
    await until(Ownership.UNVERIFIED, registry, limit_s=TTL_S + SLACK_S)
    assert guard.calls >= 1
    guard.failures = 0
    await until(Ownership.HELD, registry, limit_s=1.0 + SLACK_S)  # retried within 1 s


async def test_a_stale_manual_heartbeat_makes_it_lost(make_registry):
    old = make_registry(heartbeat_ttl_s=TTL_S)
    new = make_registry(heartbeat_ttl_s=TTL_S)
    await old.register_id(A)
    await new.register_id(A, takeover=True)
    assert old.ownership(A) is Ownership.HELD  # it cannot know before it asks
    with pytest.raises(StaleRegistrationError):
        await old.heartbeat(A)
    assert old.ownership(A) is Ownership.LOST


async def test_asking_while_redis_is_down_does_not_storm_it_with_heartbeats(make_registry):
    guard = FlakyGuard("registry_heartbeat", failures=10**6)
    registry = make_registry(heartbeat_ttl_s=TTL_S, guard=guard)
    await registry.register_id(A)
    registry.start_heartbeats()
    await until(Ownership.UNVERIFIED, registry, limit_s=TTL_S + SLACK_S)
    before = guard.calls
    for _ in range(100):  # a worker asks before every read: every few milliseconds
        assert registry.ownership(A) is Ownership.UNVERIFIED
        await asyncio.sleep(0.005)
    # One immediate beat, then the usual retry every min(interval / 2, 1 s) = 0.1 s.
    assert guard.calls - before <= 0.5 / (INTERVAL_S / 2) + 3
