"""The meeting record on Postgres (migration 0005): events, participants, restore."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tta_agent_coordination.interactions import (
    AgentMessaging,
    MeetingEventType,
    MeetingNotFoundError,
    MeetingStatusValue,
)
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import delete_prefix
from tta_agent_coordination_postgres import PostgresMeetingStore, PostgresMessageStore

HOST = AgentId("host", "h")
A = AgentId("agent", "a")
B = AgentId("agent", "b")
C = AgentId("agent", "c")


@pytest.fixture
async def record(store: PostgresMessageStore) -> PostgresMeetingStore:
    return PostgresMeetingStore(store)


@pytest.fixture
async def coordinator(coordination_redis, key_prefix) -> AsyncIterator[RedisMessageCoordinator]:
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    yield coord
    await coord.aclose()


async def _messaging(coordinator: RedisMessageCoordinator, record: PostgresMeetingStore):
    messaging = AgentMessaging(coordinator, store=record)
    await messaging.register_organization("acme")
    for agent in (HOST, A, B, C):
        await messaging.register_agent(agent, organization="acme")
    return messaging


async def test_meeting_is_recorded(coordinator, record: PostgresMeetingStore) -> None:
    messaging = await _messaging(coordinator, record)
    m = messaging.meeting
    mid = await m.create_meeting(HOST, [A, B, C], turn_duration=30)
    await m.attend_meeting(A, mid)
    await m.attend_meeting(B, mid)
    await m.start_meeting(HOST, mid, {"topic": "x"})
    await m.speak(A, mid, "idea")
    await m.leave_meeting(B, mid)  # B held the turn: it passes to HOST
    open_ = await record.open_meetings()
    assert [s.meeting_id for s in open_] == [mid]
    recorded = open_[0]
    assert recorded.status is MeetingStatusValue.ACTIVE
    assert (recorded.turn, recorded.current_speaker) == (3, HOST)
    states = {str(p.agent): (p.state.value, p.order) for p in recorded.participants}
    assert states == {
        str(HOST): ("attending", 0),
        str(A): ("attending", 1),
        str(B): ("left", 2),
        str(C): ("invited", None),
    }
    await m.end_meeting(HOST, mid)
    history = await record.meeting_history(mid)
    assert history == await m.get_meeting_history(mid)
    assert history[-1].type is MeetingEventType.ENDED
    assert await record.open_meetings() == []
    # Recording again changes nothing.
    for event in history:
        await record.record_meeting_event(event)
    assert await record.meeting_history(mid) == history


async def test_restore_after_redis_loss(
    coordinator, record: PostgresMeetingStore, coordination_redis, key_prefix
) -> None:
    messaging = await _messaging(coordinator, record)
    m = messaging.meeting
    mid = await m.create_meeting(HOST, [A, B], turn_duration=30)
    await m.attend_meeting(A, mid)
    await m.attend_meeting(B, mid)
    await m.start_meeting(HOST, mid, "go")
    await m.speak(A, mid, "a")  # turn 2 is B's
    ended = await m.create_meeting(HOST, [A], turn_duration=30)
    await m.end_meeting(HOST, ended)
    await delete_prefix(coordination_redis, key_prefix)  # Redis lost everything
    with pytest.raises(MeetingNotFoundError):
        await m.get_meeting_status(mid)
    report = await messaging.restore()
    assert report.meetings == 1
    status = await m.get_meeting_status(mid)
    assert (status.status, status.turn, status.current_speaker) == (
        MeetingStatusValue.ACTIVE,
        2,
        B,
    )
    assert status.deadline is not None
    # The round robin goes on in the recorded join order.
    turn = await m.speak(B, mid, "b")
    assert turn.speaker == HOST
    turn = await m.speak(HOST, mid, "h")
    assert turn.speaker == A
    assert (await messaging.restore()).meetings == 0  # still in Redis: left alone
    with pytest.raises(MeetingNotFoundError):
        await m.get_meeting_status(ended)
