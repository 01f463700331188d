"""`tta-coord demo` and the example scripts: in-process on both backends, and as programs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tta_agent_coordination.cli.demo.scenario import (
    DOOMED,
    POISON,
    DemoEvent,
    DemoSettings,
    run_demo,
)

REPO = Path(__file__).resolve().parents[4]
EXAMPLES = sorted((REPO / "examples").glob("*.py"))

TTA_COORD = (
    "import sys; from tta_agent_coordination.cli import main; sys.argv[0] = 'tta-coord'; main()"
)

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    # The programs run on their embedded FakeRedis whatever the caller's shell exports.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTA_COORD_")}
    env["COLUMNS"] = "160"
    return env


async def test_the_scenario_ends_with_every_message_where_it_should(coordination_redis, key_prefix):
    events: list[DemoEvent] = []
    result = await run_demo(
        coordination_redis, key_prefix, settings=DemoSettings(pause_s=0), on_event=events.append
    )
    assert result.ok, result.problems
    assert result.answered == 6
    assert result.remote_errors == 1
    assert (result.acked, result.retried, result.dead_lettered) == (6, 1, 1)
    assert result.dead_letters == [POISON]
    assert len(result.narrated) == 6
    assert result.doomed_finished_by == "world_builder:w1 (replacement)"
    assert result.crashed_abandoned == 1
    assert result.crashed_stop_reason == "registration lost"
    assert ("closed", "open") in result.breaker_transitions
    assert result.breaker_transitions[-1] == ("half_open", "closed")
    assert result.rejected > 0
    assert result.unsettled == 0
    assert any(DOOMED in e.text and "replacement" in e.agent for e in events)
    # The meeting scene ran in act 0: one silent turn timed out, the host ended it.
    assert result.meeting is not None
    assert (result.meeting.status, result.meeting.timeouts) == ("ended", ["dozy"])
    assert any(e.act == "meeting" and "timed out" in e.text for e in events)
    assert {c.name for c in result.checks if not c.ok} == set()


def test_tta_coord_demo_runs_as_a_program():
    proc = subprocess.run(
        # The console script's entry point, run by this interpreter (no `python -m` needed).
        [sys.executable, "-c", TTA_COORD, "demo", "--no-live", "--pause", "0"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "embedded FakeRedis" in out
    assert "summary: did every message end where it should?" in out
    assert "the meeting scene: ended (host), 1 timeout(s)" in out
    assert "FAIL" not in out
    assert "OK: every message ended where it should" in out


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_and_exits_0(script: Path):
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout


def test_examples_are_the_documented_three():
    assert [p.stem for p in EXAMPLES] == ["fault_tolerance", "minimal_worker", "request_reply"]
