"""Meeting participants in separate real processes on the real Redis; one is killed
while it holds the turn, and the meeting goes on within turn_duration + 1 s."""

import asyncio
import json
import os
import signal
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tta_agent_coordination.interactions import AgentMessaging, MeetingEventType
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import (
    DEFAULT_TEST_REDIS_URL,
    RealRedisUnavailableError,
    delete_prefix,
    real_redis,
    real_redis_required,
    unique_prefix,
)

from .conftest import eventually

pytestmark = [pytest.mark.slow, pytest.mark.real_redis]

SCRIPT = Path(__file__).with_name("mtg_process.py")
HOST = AgentId("host", "h")
SILENT = AgentId("agent", "silent")
TALKERS = [AgentId("agent", "p1"), AgentId("agent", "p2")]
TURN_S = 2.0


@pytest.fixture
async def real() -> AsyncIterator[tuple[AgentMessaging, str, str]]:
    url = os.environ.get("TTA_COORD_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    try:
        client = await real_redis(url)
    except RealRedisUnavailableError as exc:
        if real_redis_required():
            pytest.fail(f"{exc} (CI requires the real-Redis tests to run)")
        pytest.skip(str(exc))
    prefix = unique_prefix()
    coordinator = RedisMessageCoordinator(client, key_prefix=prefix)
    messaging = AgentMessaging(coordinator)
    await messaging.register_organization("acme")
    for agent in (HOST, SILENT, *TALKERS):
        await messaging.register_agent(agent, organization="acme")
    try:
        yield messaging, url, prefix
    finally:
        await coordinator.aclose()
        await delete_prefix(client, prefix)
        await client.aclose()


class Processes:
    def __init__(self) -> None:
        self.procs: list[Process] = []

    async def start(self, *args: str, env: dict[str, str] | None = None) -> Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            *args,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while (line := await proc.stdout.readline()) and line.strip() != b"ready":
                pass
        assert line.strip() == b"ready"
        return proc

    async def aclose(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()  # never leave a process behind
                await proc.wait()


@pytest.fixture
async def processes() -> AsyncIterator[Processes]:
    p = Processes()
    try:
        yield p
    finally:
        await p.aclose()


def read(ledger: Path) -> list[dict[str, Any]]:
    if not ledger.exists():
        return []
    return [json.loads(line) for line in ledger.read_text().splitlines() if line]


async def test_killed_speaker_process_does_not_stop_the_meeting(
    real, processes: Processes, tmp_path: Path
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
    await eventually(lambda: len(read(silent_ledger)) == 1, timeout=30)
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
    real, processes: Processes, tmp_path: Path
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
    outcomes = sorted(e["event"] for e in read(ledger) if e["event"] != "turn")
    assert outcomes == ["lost", "lost", "lost", "won"]
    spoke = [e for e in await m.get_meeting_history(mid) if e.type is MeetingEventType.SPOKE]
    assert [(e.agent, e.turn) for e in spoke] == [(HOST, 0), (TALKERS[0], 1)]
    winner = next(e for e in read(ledger) if e["event"] == "won")
    assert spoke[1].payload == {"pid": winner["pid"]}
