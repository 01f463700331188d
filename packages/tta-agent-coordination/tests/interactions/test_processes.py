"""Conversations between real processes on the real Redis: two processes talking, and a
handler process killed mid-conversation (its message is redelivered; one answer)."""

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tta_agent_coordination.interactions import AgentMessaging

from .child_processes import ChildProcesses, messaging_on_real_redis, read_ledger
from .conftest import eventually
from .conv_process import ALICE, BOB

pytestmark = [pytest.mark.slow, pytest.mark.real_redis]

SCRIPT = Path(__file__).with_name("conv_process.py")


@pytest.fixture
async def real() -> AsyncIterator[tuple[AgentMessaging, str, str]]:
    async with messaging_on_real_redis((ALICE, BOB)) as setup:
        yield setup


@pytest.fixture
async def processes() -> AsyncIterator[ChildProcesses]:
    children = ChildProcesses(SCRIPT)
    try:
        yield children
    finally:
        await children.aclose()


async def test_two_processes_hold_a_conversation(real, processes, tmp_path: Path) -> None:
    _, url, prefix = real
    server_ledger, client_ledger = tmp_path / "bob.jsonl", tmp_path / "alice.jsonl"
    server = await processes.start(url, prefix, "answer", str(server_ledger), "0")
    asker = await processes.start(url, prefix, "ask", str(client_ledger), "20")
    assert await asyncio.wait_for(asker.wait(), 60) == 0
    answers = [e for e in read_ledger(client_ledger) if e["event"] == "answer"]
    assert [a["payload"]["n"] for a in answers] == list(range(1, 21))
    assert {a["payload"]["pid"] for a in answers} == {server.pid}
    handled = read_ledger(server_ledger)
    assert [h["payload"]["n"] for h in handled] == list(range(20))


async def test_killed_handler_process_is_replaced_and_answers_once(
    real, processes, tmp_path: Path
) -> None:
    messaging, url, prefix = real
    hang_ledger, answer_ledger = tmp_path / "hang.jsonl", tmp_path / "answer.jsonl"
    hanging = await processes.start(url, prefix, "hang", str(hang_ledger), "0")
    async with messaging:
        waiting = asyncio.create_task(
            messaging.sync_conversation.send_and_wait(ALICE, BOB, {"n": 41}, timeout=60)
        )
        await eventually(lambda: len(read_ledger(hang_ledger)) == 1, timeout=30)
        hanging.send_signal(signal.SIGKILL)  # mid-handler: its message stays leased
        await asyncio.wait_for(hanging.wait(), 10)
        replacement = await processes.start(url, prefix, "answer", str(answer_ledger), "0")
        reply = await asyncio.wait_for(waiting, 60)
        assert reply.payload == {"n": 42, "pid": replacement.pid}
        handled = read_ledger(answer_ledger)
        assert len(handled) == 1
        assert handled[0]["attempts"] == 2  # the same message, redelivered
        # Nothing else answers: the wait is over, a second answer would be refused.
        assert not await messaging.sync_conversation.reply(BOB, ALICE, "again")
        assert len(read_ledger(answer_ledger)) == 1
