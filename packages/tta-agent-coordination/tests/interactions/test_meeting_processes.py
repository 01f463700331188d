"""Meeting participants in separate real processes on the real Redis; one is killed
while it holds the turn, and the meeting goes on within turn_duration + 1 s."""

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tta_agent_coordination.interactions import AgentMessaging, MeetingEventType
from tta_agent_coordination.models import AgentId

from .child_processes import ChildProcesses, messaging_on_real_redis, read_ledger
from .conftest import eventually

pytestmark = [pytest.mark.slow, pytest.mark.real_redis]

SCRIPT = Path(__file__).with_name("mtg_process.py")
HOST = AgentId("host", "h")
SILENT = AgentId("agent", "silent")
TALKERS = [AgentId("agent", "p1"), AgentId("agent", "p2")]
TURN_S = 2.0


@pytest.fixture
async def real() -> AsyncIterator[tuple[AgentMessaging, str, str]]:
    async with messaging_on_real_redis((HOST, SILENT, *TALKERS)) as setup:
        yield setup


@pytest.fixture
async def processes() -> AsyncIterator[ChildProcesses]:
    children = ChildProcesses(SCRIPT)
    try:
        yield children
    finally:
        await children.aclose()


async def test_killed_speaker_process_does_not_stop_the_meeting(
    real, processes: ChildProcesses, tmp_path: Path
) -> None:
    messaging, url, prefix = real
    m = messaging.meeting
    mid = await m.create_meeting(HOST, [SILENT, *TALKERS], turn_duration=TURN_S)
    silent_ledger = tmp_path / "silent.jsonl"
    silent = await processes.start(url, prefix, mid, str(SILENT), "hang", str(silent_ledger))
    talkers = [
        await processes.start(url, prefix, mid, str(a), "speak", str(tmp_path / f"{n}.jsonl"))
        for n, a in enumerate(TALKERS)
    ]
    await m.start_meeting(HOST, mid, "go", next_speaker=SILENT)
    await eventually(lambda: len(read_ledger(silent_ledger)) == 1, timeout=30)
    silent.send_signal(signal.SIGKILL)  # it dies holding the turn
    await asyncio.wait_for(silent.wait(), 10)

    async def talkers_spoke() -> bool:
        history = await m.get_meeting_history(mid)
        return sum(e.type is MeetingEventType.SPOKE and e.agent in TALKERS for e in history) >= 2

    await eventually(talkers_spoke, timeout=30)
    await m.end_meeting(HOST, mid)
    for proc in talkers:
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    history = await m.get_meeting_history(mid)
    first = next(e for e in history if e.type is MeetingEventType.TURN_CHANGED)
    assert (first.agent, first.turn) == (SILENT, 1)
    timed = next(e for e in history if e.type is MeetingEventType.TIMED_OUT)
    assert (timed.agent, timed.turn) == (SILENT, 1)
    passed = next(e for e in history if e.type is MeetingEventType.TURN_CHANGED and e.turn == 2)
    assert passed.agent == TALKERS[0]
    # The turn passed on the server clock within turn_duration + 1 s of its start.
    assert (passed.at - first.at).total_seconds() <= TURN_S + 1.0
    spoke = [e.agent for e in history if e.type is MeetingEventType.SPOKE and e.turn > 0]
    assert spoke[:2] == TALKERS


async def test_processes_racing_for_one_turn_one_wins(
    real, processes: ChildProcesses, tmp_path: Path
) -> None:
    messaging, url, prefix = real
    m = messaging.meeting
    mid = await m.create_meeting(HOST, [SILENT, *TALKERS], turn_duration=30)
    ledger = tmp_path / "race.jsonl"
    racers = [
        await processes.start(
            url, prefix, mid, str(TALKERS[0]), "race", str(ledger), env={"MTG_RACERS": "4"}
        )
        for _ in range(4)
    ]
    await m.start_meeting(HOST, mid, "go", next_speaker=TALKERS[0])
    for proc in racers:
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    outcomes = sorted(e["event"] for e in read_ledger(ledger) if e["event"] != "turn")
    assert outcomes == ["lost", "lost", "lost", "won"]
    spoke = [e for e in await m.get_meeting_history(mid) if e.type is MeetingEventType.SPOKE]
    assert [(e.agent, e.turn) for e in spoke] == [(HOST, 0), (TALKERS[0], 1)]
    winner = next(e for e in read_ledger(ledger) if e["event"] == "won")
    assert spoke[1].payload == {"pid": winner["pid"]}
