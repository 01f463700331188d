"""examples/plans/research_report.py runs in seconds on FakeRedis and reports OK."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
EXAMPLE = REPO / "examples" / "plans" / "research_report.py"


def test_the_plan_example_completes_with_a_retry_and_a_replan():
    env = {k: v for k, v in os.environ.items() if k != "TTA_COORD_REDIS_URL"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("OK")
    assert "[replanned]" in proc.stdout
    assert "decision=retry" in proc.stdout
    assert "> Finished: completed" in proc.stdout
