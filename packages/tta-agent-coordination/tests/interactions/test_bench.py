"""The conversation benchmark runs (quick mode, two processes, real Redis)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tta_agent_coordination.testing import DEFAULT_TEST_REDIS_URL

from .test_processes import real  # noqa: F401 - the real-Redis fixture (skips without one)

REPO = Path(__file__).resolve().parents[4]
BENCH = REPO / "scripts" / "bench_conversations.py"

pytestmark = [pytest.mark.slow, pytest.mark.real_redis]


def test_quick_benchmark_prints_both_kinds(real) -> None:  # noqa: F811
    url = os.environ.get("TTA_COORD_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--turns", "10", "--pairs", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "TTA_COORD_BENCH_REDIS_URL": url},
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["request()", "send_and_wait"]
