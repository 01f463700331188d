"""Conversations between real processes on the real Redis: two processes talking, and a
handler process killed mid-conversation (its message is redelivered; one answer)."""

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

from tta_agent_coordination.interactions import AgentMessaging
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
from .conv_process import ALICE, BOB

pytestmark = [pytest.mark.slow, pytest.mark.real_redis]

SCRIPT = Path(__file__).with_name("conv_process.py")


@pytest.fixture
async def real(tmp_path: Path) -> AsyncIterator[tuple[AgentMessaging, str, str]]:
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
    for agent in (ALICE, BOB):
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
        self.drains: set[asyncio.Future[bytes]] = set()

    async def start(self, url: str, prefix: str, mode: str, ledger: Path, turns: int = 0):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            url,
            prefix,
            mode,
            str(ledger),
            str(turns),
            stdout=asyncio.subprocess.PIPE,
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


async def test_two_processes_hold_a_conversation(real, processes, tmp_path: Path) -> None:
    _, url, prefix = real
    server_ledger, client_ledger = tmp_path / "bob.jsonl", tmp_path / "alice.jsonl"
    server = await processes.start(url, prefix, "answer", server_ledger)
    asker = await processes.start(url, prefix, "ask", client_ledger, turns=20)
    assert await asyncio.wait_for(asker.wait(), 60) == 0
    answers = [e for e in read(client_ledger) if e["event"] == "answer"]
    assert [a["payload"]["n"] for a in answers] == list(range(1, 21))
    assert {a["payload"]["pid"] for a in answers} == {server.pid}
    handled = read(server_ledger)
    assert [h["payload"]["n"] for h in handled] == list(range(20))


async def test_killed_handler_process_is_replaced_and_answers_once(
    real, processes, tmp_path: Path
) -> None:
    messaging, url, prefix = real
    hang_ledger, answer_ledger = tmp_path / "hang.jsonl", tmp_path / "answer.jsonl"
    hanging = await processes.start(url, prefix, "hang", hang_ledger)
    async with messaging:
        waiting = asyncio.create_task(
            messaging.sync_conversation.send_and_wait(ALICE, BOB, {"n": 41}, timeout=60)
        )
        await eventually(lambda: len(read(hang_ledger)) == 1, timeout=30)
        hanging.send_signal(signal.SIGKILL)  # mid-handler: its message stays leased
        await asyncio.wait_for(hanging.wait(), 10)
        replacement = await processes.start(url, prefix, "answer", answer_ledger)
        reply = await asyncio.wait_for(waiting, 60)
        assert reply.payload == {"n": 42, "pid": replacement.pid}
        handled = read(answer_ledger)
        assert len(handled) == 1
        assert handled[0]["attempts"] == 2  # the same message, redelivered
        # Nothing else answers: the wait is over, a second answer would be refused.
        assert not await messaging.sync_conversation.reply(BOB, ALICE, "again")
        assert len(read(answer_ledger)) == 1
