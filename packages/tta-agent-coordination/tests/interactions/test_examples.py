"""The conversation examples run (on an embedded FakeRedis) and say OK."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
EXAMPLES = sorted((REPO / "examples" / "conversations").glob("[!_]*.py"))


def test_the_four_scenarios_are_there() -> None:
    assert [p.stem for p in EXAMPLES] == [
        "interview",
        "notification",
        "support_desk",
        "task_pipeline",
    ]


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(script: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TTA_COORD_REDIS_URL"}
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("OK")
