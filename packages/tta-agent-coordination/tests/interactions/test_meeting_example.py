"""The brainstorming meeting example runs (on an embedded FakeRedis) and says OK."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
SCRIPT = REPO / "examples" / "meetings" / "brainstorm.py"


def test_brainstorm_runs_and_the_silent_agent_times_out() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TTA_COORD_REDIS_URL"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("OK")
    assert "timed_out    thinker:dozy" in proc.stdout
