"""Conversations, meetings and plan runs on the local Cluster: the examples, run as a user would.

Each example runs in a subprocess with ``TTA_COORD_REDIS_URL`` set to the Cluster (its
scripts keep one hash tag each; its keys are deleted after on every primary) and must
exit 0, as it does on FakeRedis (``tests/interactions/test_examples.py``,
``tests/plans/test_example.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    ROOT / "examples" / "conversations" / "notification.py",
    ROOT / "examples" / "conversations" / "interview.py",
    ROOT / "examples" / "conversations" / "support_desk.py",
    ROOT / "examples" / "conversations" / "task_pipeline.py",
    ROOT / "examples" / "plans" / "research_report.py",
    ROOT / "examples" / "meetings" / "brainstorm.py",
]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_the_example_runs_on_the_cluster(example: Path, cluster_url: str) -> None:
    env = {**os.environ, "TTA_COORD_REDIS_URL": cluster_url}
    done = subprocess.run(
        [sys.executable, str(example)],
        cwd=example.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "OK" in done.stdout
