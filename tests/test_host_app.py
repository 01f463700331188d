"""A host application's tests, run as the host runs them: FakeRedis only, no server.

``host_app/`` holds what the README's "Testing your agents" section tells a host to
write. It runs in its own pytest process with ``CI=true`` (GitHub Actions sets it) and a
Redis URL where nothing listens: every test must pass on FakeRedis, once, and never
touch or require a real server unless the host opts in.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tta_agent_coordination.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
HOST_APP = Path(__file__).with_name("host_app")
NOWHERE = f"redis://127.0.0.1:{free_port()}/0"


def run_host_tests(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TTA_COORD_", "PYTEST_")) and k != "CI"
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
        cwd=HOST_APP,
        env={**clean, "CI": "true", "TTA_COORD_TEST_REDIS_URL": NOWHERE, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_host_apps_tests_run_on_fakeredis_only_even_under_ci() -> None:
    run = run_host_tests()
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^2 passed", run.stdout, re.MULTILINE), run.stdout
    assert "[real]" not in run.stdout


def test_opting_in_to_the_real_server_skips_when_it_is_down() -> None:
    run = run_host_tests("--coordination-backend=both")
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^2 passed, 2 skipped", run.stdout, re.MULTILINE), run.stdout
    assert "is not answering" in run.stdout


def test_requiring_the_real_server_fails_when_it_is_down() -> None:
    run = run_host_tests("--coordination-backend=real", TTA_COORD_REQUIRE_REAL_REDIS="1")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "TTA_COORD_REQUIRE_REAL_REDIS=1" in run.stdout


def test_the_backend_can_come_from_the_environment() -> None:
    run = run_host_tests(TTA_COORD_TEST_BACKEND="both")
    assert re.search(r"^2 passed, 2 skipped", run.stdout, re.MULTILINE), run.stdout
    bad = run_host_tests(TTA_COORD_TEST_BACKEND="cluster")
    assert bad.returncode == 4, bad.stdout + bad.stderr  # pytest's usage error
    assert "TTA_COORD_TEST_BACKEND='cluster'" in bad.stderr


def _readme_testing_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Testing your agents without a Redis server", 1)[1].split("\n## ")[0]
    return re.findall(r"```(?:toml|python)\n(.*?)```", section, flags=re.DOTALL)


@pytest.mark.parametrize("name", ["pyproject.toml", "conftest.py", "test_my_agent.py"])
def test_the_readme_shows_the_host_app_files_as_they_are(name: str) -> None:
    content = (HOST_APP / name).read_text(encoding="utf-8")
    blocks = _readme_testing_blocks()
    assert any(
        block.split("\n", 1)[1] == content for block in blocks if block.startswith(f"# {name}")
    ), f"README's testing section has no block '# {name}' equal to tests/host_app/{name}"


def test_the_host_run_is_free_of_warnings() -> None:
    run = run_host_tests("-W", "error")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "warning" not in run.stdout.lower()
