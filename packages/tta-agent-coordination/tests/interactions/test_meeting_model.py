"""Random attend/start/speak/timeout/leave/end sequences against a pure model of a meeting.

The turn duration is long (nothing times out by itself); the ``timeout`` rule moves the
current turn's deadline into the past (as the server clock passing it would) and runs the
compare-and-set, once with the current turn and once more as a duplicate.
"""

import asyncio
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tta_agent_coordination.interactions import (
    AgentMessaging,
    MeetingStateError,
    MeetingStatusValue,
    NotInvitedError,
    NotMeetingHostError,
    NotYourTurnError,
    TurnExpiredError,
)
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import (
    RealRedisUnavailableError,
    delete_prefix,
    fake_redis,
    real_redis,
    unique_prefix,
)
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail

HOST = AgentId("host", "h")
INVITED = [AgentId("agent", n) for n in ("a", "b", "c")]
OUTSIDER = AgentId("agent", "x")
EVERYONE = [HOST, *INVITED, OUTSIDER]
agents = st.sampled_from(EVERYONE)
nexts = st.one_of(st.none(), agents)


async def _drain(tasks: list[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


class MeetingModel(RuleBasedStateMachine):
    backend = "fake"
    paths: Counter[str] = Counter()  # which outcomes the examples reached

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.prefix = unique_prefix("hypmtg")
        self.redis = self.run(real_redis()) if self.backend == "real" else fake_redis()
        self.coord = RedisMessageCoordinator(self.redis, key_prefix=self.prefix)
        self.m = AgentMessaging(self.coord)
        self.run(self.m.register_organization("org"))
        for agent in EVERYONE:
            self.run(self.m.register_agent(agent, organization="org"))
        self.mid = self.run(self.m.meeting.create_meeting(HOST, INVITED, turn_duration=600))
        # The model.
        self.state = {str(HOST): "attending", **{str(a): "invited" for a in INVITED}}
        self.seq = {str(HOST): 0}
        self.next_seq = 0
        self.status = "created"
        self.turn = 0
        self.speaker = ""
        self.timed_out: tuple[str, int] | None = None
        self.turns_of: dict[str, int] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.coord.aclose())
        self.run(delete_prefix(self.redis, self.prefix))
        self.run(self.redis.aclose())
        leftover = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in leftover:
            task.cancel()
        self.run(_drain(leftover))
        self.loop.close()

    # --- the model's rules ----------------------------------------------------------------

    def _attending(self) -> list[str]:
        return sorted(
            (a for a, s in self.state.items() if s == "attending"), key=lambda a: self.seq[a]
        )

    def _advance(self, nxt: str | None) -> None:
        self.turn += 1
        if nxt is None:
            order = self._attending()
            mine = self.seq[self.speaker] if self.speaker else 0
            later = [a for a in order if self.seq[a] > mine]
            nxt = later[0] if later else order[0]
        self.speaker = nxt
        self.turns_of[nxt] = self.turns_of.get(nxt, 0) + 1

    def _valid_next(self, nxt: AgentId | None) -> bool:
        return nxt is None or self.state.get(str(nxt)) == "attending"

    @rule(agent=agents)
    def attend(self, agent: AgentId) -> None:
        name = str(agent)
        member = self.state.get(name)
        if member is None:
            with pytest.raises(NotInvitedError):
                self.run(self.m.meeting.attend_meeting(agent, self.mid))
        elif self.status == "ended" or member == "left":
            with pytest.raises(MeetingStateError):
                self.run(self.m.meeting.attend_meeting(agent, self.mid))
        else:
            self.run(self.m.meeting.attend_meeting(agent, self.mid))
            if member == "invited":
                self.next_seq += 1
                self.seq[name] = self.next_seq
                self.state[name] = "attending"

    @rule(by=agents, nxt=nexts)
    def start(self, by: AgentId, nxt: AgentId | None) -> None:
        call = self.m.meeting.start_meeting(by, self.mid, "open", next_speaker=nxt)
        if by != HOST:
            with pytest.raises(NotMeetingHostError):
                self.run(call)
        elif self.status != "created" or not self._valid_next(nxt):
            with pytest.raises(MeetingStateError):
                self.run(call)
        else:
            turn = self.run(call)
            self.status = "active"
            self.speaker = str(HOST)
            self._advance(str(nxt) if nxt else None)
            assert (turn.turn, str(turn.speaker)) == (self.turn, self.speaker)

    @rule(agent=agents, nxt=nexts)
    def speak(self, agent: AgentId, nxt: AgentId | None) -> None:
        name = str(agent)
        call = self.m.meeting.speak(agent, self.mid, {"turn": self.turn}, next_speaker=nxt)
        if name not in self.state:
            with pytest.raises(NotInvitedError):
                self.run(call)
        elif self.status != "active":
            with pytest.raises(MeetingStateError):
                self.run(call)
        elif name != self.speaker:
            late = self.timed_out == (name, self.turn - 1)
            self.paths["late" if late else "not_your_turn"] += 1
            with pytest.raises(TurnExpiredError if late else NotYourTurnError):
                self.run(call)
        elif not self._valid_next(nxt):
            with pytest.raises(MeetingStateError):
                self.run(call)
        else:
            turn = self.run(call)
            self.paths["spoke"] += 1
            self._advance(str(nxt) if nxt else None)
            assert (turn.turn, str(turn.speaker)) == (self.turn, self.speaker)

    # Targeted rules: random agents rarely hit the host, the invited, the current or
    # the timed-out speaker.

    @precondition(lambda self: self.status == "created")
    @rule(nxt=nexts)
    def host_starts(self, nxt: AgentId | None) -> None:
        self.start(HOST, nxt)

    @precondition(lambda self: "invited" in self.state.values())
    @rule(data=st.data())
    def invited_attends(self, data: st.DataObject) -> None:
        invited = sorted(a for a, s in self.state.items() if s == "invited")
        self.attend(AgentId.parse(data.draw(st.sampled_from(invited))))

    @precondition(lambda self: self.status == "active")
    @rule(nxt=nexts)
    def current_speaker_speaks(self, nxt: AgentId | None) -> None:
        self.speak(AgentId.parse(self.speaker), nxt)

    @precondition(
        lambda self: (
            self.status == "active"
            and self.timed_out is not None
            and self.timed_out[1] == self.turn - 1
        )
    )
    @rule()
    def timed_out_speaker_speaks(self) -> None:
        assert self.timed_out is not None
        self.speak(AgentId.parse(self.timed_out[0]), None)

    @precondition(lambda self: self.status == "active" and self.speaker != str(HOST))
    @rule()
    def current_speaker_leaves(self) -> None:
        self.leave(AgentId.parse(self.speaker))

    @precondition(lambda self: self.status == "active")
    @rule()
    def active_turn_times_out(self) -> None:
        self.timeout()

    @rule()
    def timeout(self) -> None:
        state_key = self.m.keys.meeting(self.mid).state
        if self.status == "active":
            self.run(self.redis.hset(state_key, "deadline", "1"))  # the deadline passed
        assert self.run(self.m.meeting.check_timeout(self.mid, self.turn)) == (
            self.status == "active"
        )
        if self.status == "active":
            self.paths["timed_out"] += 1
            self.timed_out = (self.speaker, self.turn)
            self._advance(None)
        assert not self.run(self.m.meeting.check_timeout(self.mid, self.turn - 1))

    @rule(agent=agents)
    def leave(self, agent: AgentId) -> None:
        name = str(agent)
        member = self.state.get(name)
        call = self.m.meeting.leave_meeting(agent, self.mid)
        if member is None:
            with pytest.raises(NotInvitedError):
                self.run(call)
        elif agent == HOST or self.status == "ended" or member == "left":
            with pytest.raises(MeetingStateError):
                self.run(call)
        else:
            self.run(call)
            self.state[name] = "left"
            if self.status == "active" and self.speaker == name:
                self.paths["speaker_left"] += 1
                self._advance(None)

    @rule(by=agents)
    def end(self, by: AgentId) -> None:
        call = self.m.meeting.end_meeting(by, self.mid)
        if by != HOST:
            with pytest.raises(NotMeetingHostError):
                self.run(call)
        elif self.status == "ended":
            with pytest.raises(MeetingStateError):
                self.run(call)
        else:
            self.run(call)
            self.status = "ended"
            self.speaker = ""

    @invariant()
    def matches_the_model(self) -> None:
        status = self.run(self.m.meeting.get_meeting_status(self.mid))
        assert status.status is MeetingStatusValue(self.status)
        assert status.turn == self.turn
        assert str(status.current_speaker or "") == (
            self.speaker if self.status == "active" else ""
        )
        assert {str(p.agent): p.state.value for p in status.participants} == self.state
        # A participant who left never holds the turn.
        if status.current_speaker is not None:
            assert self.state[str(status.current_speaker)] == "attending"


def _run(backend: str, examples: int) -> None:
    if backend == "real":
        probe = asyncio.new_event_loop()
        try:
            probe.run_until_complete(_probe())
        except RealRedisUnavailableError as exc:
            skip_or_fail(str(exc))
        finally:
            probe.close()
    machine = type(f"MeetingModel_{backend}", (MeetingModel,), {"backend": backend})
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=30,
        deadline=None,
        # Fixed examples, so that the check of the outcomes they reach cannot flake.
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    MeetingModel.paths.clear()
    machine.TestCase().runTest()
    # The examples reached every interesting outcome (else the model proves little).
    reached = set(MeetingModel.paths)
    assert {"spoke", "timed_out", "late", "not_your_turn", "speaker_left"} <= reached, (
        MeetingModel.paths
    )


async def _probe() -> None:
    client = await real_redis()
    await client.aclose()


@pytest.mark.slow
def test_meetings_match_model_on_fakeredis() -> None:
    _run("fake", 60)


@pytest.mark.slow
@pytest.mark.real_redis
def test_meetings_match_model_on_real_redis() -> None:
    _run("real", 20)
