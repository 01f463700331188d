import asyncio

import pytest

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.interactions import (
    AgentMessaging,
    AgentNotFoundError,
    MeetingClock,
    MeetingEvent,
    MeetingEventType,
    MeetingNotFoundError,
    MeetingStateError,
    MeetingStatusValue,
    MeetingWaitTimeoutError,
    NotInvitedError,
    NotMeetingHostError,
    NotYourTurnError,
    ParticipantState,
    PayloadError,
    TurnExpiredError,
)
from tta_agent_coordination.models import AgentId

from .conftest import ALICE, BOB, CAROL, eventually

DAVE = AgentId("support", "dave")


async def _meeting(messaging: AgentMessaging, turn_duration: float = 30.0, **kw) -> str:
    mid = await messaging.meeting.create_meeting(
        ALICE, [BOB, CAROL], turn_duration=turn_duration, **kw
    )
    await messaging.meeting.attend_meeting(BOB, mid)
    await messaging.meeting.attend_meeting(CAROL, mid)
    return mid


def _types(events: list[MeetingEvent]) -> list[str]:
    return [e.type.value for e in events]


async def test_round_robin_in_join_order(messaging: AgentMessaging) -> None:
    m = messaging.meeting
    mid = await _meeting(messaging)
    status = await m.get_meeting_status(mid)
    assert status.status is MeetingStatusValue.CREATED
    assert [str(p.agent) for p in status.participants] == [str(ALICE), str(BOB), str(CAROL)]
    assert {p.state for p in status.participants} == {ParticipantState.ATTENDING}
    turn = await m.start_meeting(ALICE, mid, {"topic": "names"})
    assert (turn.turn, turn.speaker) == (1, BOB)
    assert turn.deadline is not None
    speakers = []
    for _ in range(6):  # two rounds
        speaker = turn.speaker
        assert speaker is not None
        speakers.append(speaker)
        turn = await m.speak(speaker, mid, f"idea {turn.turn}")
    assert speakers == [BOB, CAROL, ALICE] * 2
    assert turn.turn == 7
    history = await m.get_meeting_history(mid)
    spoke = [e for e in history if e.type is MeetingEventType.SPOKE]
    assert [e.payload for e in spoke] == [{"topic": "names"}] + [f"idea {n}" for n in range(1, 7)]
    assert [e.turn for e in spoke] == list(range(7))
    assert _types(history)[:5] == ["created", "joined", "joined", "started", "spoke"]
    assert [e.event_id for e in history] == sorted(e.event_id for e in history)


async def test_named_next_speaker(messaging: AgentMessaging) -> None:
    m = messaging.meeting
    mid = await _meeting(messaging)
    turn = await m.start_meeting(ALICE, mid, "go", next_speaker=CAROL)
    assert turn.speaker == CAROL
    turn = await m.speak(CAROL, mid, "me", next_speaker=CAROL)
    assert (turn.turn, turn.speaker) == (2, CAROL)
    with pytest.raises(MeetingStateError, match="next speaker"):
        await m.speak(CAROL, mid, "x", next_speaker=DAVE)
    with pytest.raises(MeetingStateError, match="next speaker"):
        await m.start_meeting(ALICE, await _meeting(messaging), "x", next_speaker=DAVE)


async def test_errors(messaging: AgentMessaging) -> None:
    m = messaging.meeting
    await messaging.register_agent(DAVE, organization="acme")
    with pytest.raises(ConfigurationError):
        await m.create_meeting(ALICE, [])
    with pytest.raises(ConfigurationError):
        await m.create_meeting(ALICE, [BOB], turn_duration=0)
    with pytest.raises(ConfigurationError):
        await m.create_meeting(ALICE, [BOB], max_turns=0)
    with pytest.raises(ConfigurationError):
        await m.create_meeting(ALICE, [BOB], meeting_id="bad id!")
    with pytest.raises(AgentNotFoundError):
        await m.create_meeting(ALICE, [AgentId("ghost", "g")])
    mid = await m.create_meeting(ALICE, [BOB, CAROL], meeting_id="standup")
    with pytest.raises(MeetingStateError):
        await m.create_meeting(ALICE, [BOB], meeting_id="standup")
    with pytest.raises(MeetingNotFoundError):
        await m.attend_meeting(BOB, "nope")
    with pytest.raises(MeetingNotFoundError):
        await m.get_meeting_status("nope")
    with pytest.raises(MeetingNotFoundError):
        await m.get_meeting_history("nope")
    with pytest.raises(NotInvitedError):
        await m.attend_meeting(DAVE, mid)
    await m.attend_meeting(BOB, mid)
    await m.attend_meeting(BOB, mid)  # again: no-op
    with pytest.raises(MeetingStateError):  # before start
        await m.speak(BOB, mid, "hi")
    with pytest.raises(NotMeetingHostError):
        await m.start_meeting(BOB, mid, "hi")
    with pytest.raises(PayloadError):
        await m.start_meeting(ALICE, mid, object())
    await m.start_meeting(ALICE, mid, "hi")
    with pytest.raises(MeetingStateError):
        await m.start_meeting(ALICE, mid, "again")
    with pytest.raises(NotYourTurnError) as info:
        await m.speak(ALICE, mid, "not mine")
    assert info.value.speaker == str(BOB)
    with pytest.raises(NotInvitedError):
        await m.speak(DAVE, mid, "x")
    with pytest.raises(MeetingStateError):
        await m.leave_meeting(ALICE, mid)  # the host ends instead
    with pytest.raises(NotInvitedError):
        await m.leave_meeting(DAVE, mid)
    with pytest.raises(NotMeetingHostError):
        await m.end_meeting(BOB, mid)
    with pytest.raises(NotInvitedError):
        await m.wait_for_turn(DAVE, mid, timeout=1)
    with pytest.raises(MeetingWaitTimeoutError):
        await m.wait_for_turn(CAROL, mid, timeout=0.2)  # CAROL only invited; BOB speaks
    await m.end_meeting(ALICE, mid)
    with pytest.raises(MeetingStateError):
        await m.end_meeting(ALICE, mid)
    with pytest.raises(MeetingStateError):
        await m.speak(BOB, mid, "after end")
    with pytest.raises(MeetingStateError):
        await m.attend_meeting(CAROL, mid)
    with pytest.raises(MeetingStateError):
        await m.leave_meeting(BOB, mid)
    with pytest.raises(ConfigurationError):
        await m.wait_for_turn(BOB, mid, timeout=-1)


async def test_silent_speaker_times_out_on_the_server_clock(messaging: AgentMessaging) -> None:
    m = messaging.meeting
    mid = await _meeting(messaging, turn_duration=0.3)
    seen: list[MeetingEvent] = []

    @messaging.register_event_handler(MeetingEventType.TIMED_OUT)
    async def on_timeout(event: MeetingEvent) -> None:
        seen.append(event)

    await m.start_meeting(ALICE, mid, "go")  # BOB's turn; BOB stays silent
    turn = await m.wait_for_turn(CAROL, mid, timeout=10)
    assert (turn.turn, turn.speaker) == (2, CAROL)
    assert [(e.agent, e.turn) for e in seen] == [(BOB, 1)]
    # BOB's message now is late: recorded and refused.
    with pytest.raises(TurnExpiredError) as info:
        await m.speak(BOB, mid, "sorry, here")
    assert info.value.turn == 1
    history = await m.get_meeting_history(mid)
    late = [e for e in history if e.type is MeetingEventType.LATE]
    assert [(e.agent, e.payload) for e in late] == [(BOB, "sorry, here")]
    # A duplicate timeout of turn 1 is a no-op.
    assert await m.check_timeout(mid, turn=1) is False
    assert (await m.get_meeting_status(mid)).turn == 2


async def test_speaking_past_the_deadline_is_late(messaging: AgentMessaging) -> None:
    m = messaging.meeting
    mid = await _meeting(messaging, turn_duration=0.2)
    await m.start_meeting(ALICE, mid, "go")

    async def past() -> bool:
        s = await m.get_meeting_status(mid)
        return s.deadline is not None and s.now > s.deadline

    await eventually(past)
    with pytest.raises(TurnExpiredError):
        await m.speak(BOB, mid, "too late")
    status = await m.get_meeting_status(mid)
    assert (status.turn, status.current_speaker) == (2, CAROL)
    types = _types(await m.get_meeting_history(mid))
    assert types[-3:] == ["late", "timed_out", "turn_changed"]


async def test_speaker_leaving_passes_the_turn(messaging: AgentMessaging) -> None:
    m = messaging.meeting
    mid = await _meeting(messaging)
    await m.start_meeting(ALICE, mid, "go")
    await m.leave_meeting(BOB, mid)
    status = await m.get_meeting_status(mid)
    assert (status.turn, status.current_speaker) == (2, CAROL)
    assert {str(p.agent): p.state for p in status.participants}[str(BOB)] is ParticipantState.LEFT
    turn = await m.speak(CAROL, mid, "c")
    assert turn.speaker == ALICE
    turn = await m.speak(ALICE, mid, "a")
    assert turn.speaker == CAROL  # BOB never gets the turn again
    with pytest.raises(MeetingStateError):
        await m.attend_meeting(BOB, mid)
    with pytest.raises(MeetingStateError):
        await m.wait_for_turn(BOB, mid)
    with pytest.raises(MeetingStateError):
        await m.leave_meeting(BOB, mid)


async def test_host_ends_mid_turn_wakes_waiters(messaging: AgentMessaging) -> None:
    m = messaging.meeting
    mid = await _meeting(messaging)
    await m.start_meeting(ALICE, mid, "go")
    waiter = asyncio.create_task(m.wait_for_turn(CAROL, mid))
    events = []

    async def follow() -> None:
        async for event in m.events(mid):
            events.append(event)

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0)
    await m.end_meeting(ALICE, mid)
    turn = await asyncio.wait_for(waiter, 10)
    assert turn.ended
    assert turn.speaker is None
    await asyncio.wait_for(follower, 10)
    assert events[-1].type is MeetingEventType.ENDED
    assert events[-1].data["reason"] == "host"
    status = await m.get_meeting_status(mid)
    assert status.status is MeetingStatusValue.ENDED
    assert status.current_speaker is None
    assert status.end_reason == "host"


async def test_max_turns_ends_the_meeting(messaging: AgentMessaging) -> None:
    m = messaging.meeting
    mid = await _meeting(messaging, max_turns=2)
    turn = await m.start_meeting(ALICE, mid, "go")
    turn = await m.speak(BOB, mid, "1")
    assert not turn.ended
    turn = await m.speak(CAROL, mid, "2")
    assert turn.ended
    assert turn.speaker is None
    status = await m.get_meeting_status(mid)
    assert status.end_reason == "max_turns"


async def test_events_after_an_id_and_listing(messaging: AgentMessaging) -> None:
    m = messaging.meeting
    mid = await _meeting(messaging)
    history = await m.get_meeting_history(mid)
    await m.start_meeting(ALICE, mid, "go")
    await m.end_meeting(ALICE, mid)
    later = [e async for e in m.events(mid, after=history[-1].event_id)]
    assert _types(later) == ["started", "spoke", "turn_changed", "ended"]
    assert len(await m.get_meeting_history(mid, limit=2)) == 2
    assert mid in await m.list_meetings()


async def test_concurrent_speakers_one_wins(messaging: AgentMessaging) -> None:
    m = messaging.meeting
    mid = await _meeting(messaging)
    await m.start_meeting(ALICE, mid, "go")
    results = await asyncio.gather(
        *(m.speak(BOB, mid, f"b{n}") for n in range(8)), return_exceptions=True
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    assert len(wins) == 1
    assert all(isinstance(r, NotYourTurnError) for r in results if r not in wins)
    assert (await m.get_meeting_status(mid)).turn == 2


async def test_clock_advances_a_meeting_nobody_watches(messaging: AgentMessaging) -> None:
    m = messaging.meeting
    mid = await _meeting(messaging, turn_duration=0.2, max_turns=3)
    await m.start_meeting(ALICE, mid, "go")
    clock = MeetingClock(messaging, idle_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(clock.run(stop))
    try:

        async def ended() -> bool:
            return (await m.get_meeting_status(mid)).status is MeetingStatusValue.ENDED

        await eventually(ended)
    finally:
        stop.set()
        await task
    assert clock.timeouts == 3
    timed = [e for e in await m.get_meeting_history(mid) if e.type is MeetingEventType.TIMED_OUT]
    assert [e.turn for e in timed] == [1, 2, 3]
    assert mid not in await messaging.redis.zrange(messaging.keys.meetings_due, 0, -1)


async def test_clock_settings_and_vanished_meeting(messaging: AgentMessaging) -> None:
    with pytest.raises(ConfigurationError):
        MeetingClock(messaging, idle_s=0)
    with pytest.raises(ConfigurationError):
        MeetingClock(messaging, batch=0)
    await messaging.redis.zadd(messaging.keys.meetings_due, {"gone": 0})
    clock = MeetingClock(messaging)
    assert await clock.tick() <= 0.5
    assert await messaging.redis.zscore(messaging.keys.meetings_due, "gone") is None
    with pytest.raises(MeetingNotFoundError):
        await messaging.meeting.check_timeout("gone")


async def test_failing_event_handler_is_logged(messaging: AgentMessaging) -> None:
    calls = []

    @messaging.register_event_handler(MeetingEventType.CREATED)
    async def boom(event: MeetingEvent) -> None:
        calls.append(event)
        raise RuntimeError("handler broke")

    mid = await _meeting(messaging)
    assert calls[0].meeting_id == mid
    assert calls[0].data["participants"] == [str(BOB), str(CAROL)]


async def test_fifty_agents(messaging: AgentMessaging) -> None:
    m = messaging.meeting
    agents = [AgentId("bot", f"b{n:02d}") for n in range(50)]
    for agent in agents:
        await messaging.register_agent(agent, organization="acme")
    mid = await m.create_meeting(ALICE, agents, turn_duration=30)
    await asyncio.gather(*(m.attend_meeting(a, mid) for a in agents))
    order = [p.agent for p in (await m.get_meeting_status(mid)).participants]
    assert order[0] == ALICE
    assert len(order) == 51
    turn = await m.start_meeting(ALICE, mid, "go")
    spoken: list[AgentId] = []

    async def participant(agent: AgentId) -> None:
        t = await m.wait_for_turn(agent, mid, timeout=60)
        spoken.append(agent)
        await m.speak(agent, mid, f"from {agent}")
        del t

    tasks = [asyncio.create_task(participant(a)) for a in agents]
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert spoken == order[1:]
    assert turn.turn == 1
    status = await m.get_meeting_status(mid)
    assert (status.turn, status.current_speaker) == (51, ALICE)


async def test_messaging_runs_a_meeting_clock(coordinator) -> None:
    messaging = AgentMessaging(coordinator, meeting_clock=True)
    assert messaging.meeting_clock is not None
    await messaging.register_organization("acme")
    for agent in (ALICE, BOB, CAROL):
        await messaging.register_agent(agent, organization="acme")
    mid = await _meeting(messaging, turn_duration=0.2, max_turns=2)
    await messaging.meeting.start_meeting(ALICE, mid, "go")
    async with messaging:  # nobody waits: the clock alone ends the meeting

        async def ended() -> bool:
            status = await messaging.meeting.get_meeting_status(mid)
            return status.status is MeetingStatusValue.ENDED

        await eventually(ended)
    assert messaging.meeting_clock.timeouts == 2
    assert AgentMessaging(coordinator).meeting_clock is None


async def test_following_a_meeting_that_expires(
    messaging: AgentMessaging, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tta_agent_coordination.interactions import meetings as meetings_module

    monkeypatch.setattr(meetings_module, "_FOLLOW_RECHECK_S", 0.1)
    mid = await _meeting(messaging)
    seen: list[MeetingEvent] = []

    async def follow() -> None:
        async for event in messaging.meeting.events(mid):
            seen.append(event)

    task = asyncio.create_task(follow())
    await eventually(lambda: len(seen) == 3)  # created, joined, joined
    await messaging.redis.delete(*messaging.keys.meeting(mid).all())  # its retention passed
    with pytest.raises(MeetingNotFoundError):
        await asyncio.wait_for(task, 10)
    with pytest.raises(MeetingNotFoundError):
        await anext(aiter(messaging.meeting.events("nope")))


class _BrokenMeetingStore:
    """A record whose meeting writes fail (the database is down)."""

    def __init__(self) -> None:
        self.attempts = 0

    async def record_meeting(self, status: object) -> None:
        self.attempts += 1
        raise ConnectionError("database down")

    async def record_meeting_event(self, event: object) -> None:
        self.attempts += 1
        raise ConnectionError("database down")

    async def open_meetings(self) -> list[object]:
        return []


async def test_a_failing_store_does_not_stop_the_meeting(
    messaging: AgentMessaging, coordinator
) -> None:
    store = _BrokenMeetingStore()
    # The directory is already registered (by the fixture's messaging).
    messaging = AgentMessaging(coordinator, store=store)  # type: ignore[arg-type]
    mid = await _meeting(messaging)
    turn = await messaging.meeting.start_meeting(ALICE, mid, "go")
    assert turn.speaker == BOB
    await messaging.meeting.end_meeting(ALICE, mid)
    assert store.attempts >= 8  # every event and status write was tried


async def test_clock_survives_a_redis_failure(
    messaging: AgentMessaging, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tta_agent_coordination.errors import CoordinatorUnavailableError

    clock = MeetingClock(messaging, idle_s=0.01)
    real_tick = clock.tick
    calls = 0
    stop = asyncio.Event()

    async def flaky() -> float:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise CoordinatorUnavailableError("redis down")
        if calls == 3:
            stop.set()
        return await real_tick()

    monkeypatch.setattr(clock, "tick", flaky)
    await asyncio.wait_for(clock.run(stop), 10)
    assert calls == 3  # it went on after the failure


async def test_clock_finds_a_meeting_whose_starter_crashed(messaging: AgentMessaging) -> None:
    m = messaging.meeting
    due = messaging.keys.meetings_due
    mid = await _meeting(messaging, turn_duration=0.2)
    with pytest.raises(NotMeetingHostError):  # a failed start files it ...
        await m.start_meeting(BOB, mid, "go")
    assert await messaging.redis.zscore(due, mid) == 0
    clock = MeetingClock(messaging)
    await clock.tick()  # ... and the clock drops it: not started, nothing to time out
    assert await messaging.redis.zscore(due, mid) is None
    await m.start_meeting(ALICE, mid, "go")
    # The host's process crashes right after the start script: its index update is lost.
    await messaging.redis.zadd(due, {mid: 0})
    await clock.tick()  # too early to time out; filed at the real deadline
    status = await m.get_meeting_status(mid)
    assert await messaging.redis.zscore(due, mid) == status.deadline.timestamp() * 1000

    async def timed_out() -> bool:
        await clock.tick()
        return (await m.get_meeting_status(mid)).turn == 2

    await eventually(timed_out)
    assert clock.timeouts == 1


async def test_listing_forgets_meetings_past_retention(coordinator) -> None:
    messaging = AgentMessaging(coordinator, retention_s=60)
    await messaging.register_organization("acme")
    for agent in (ALICE, BOB):
        await messaging.register_agent(agent, organization="acme")
    listed = messaging.keys.meetings_all
    await messaging.redis.zadd(listed, {"ancient": 1_000, "crashed": 0})  # 1970; a crash
    mid = await messaging.meeting.create_meeting(ALICE, [BOB])
    assert await messaging.meeting.list_meetings() == [mid]
