"""Distribution: the core installs from a git URL, and the built packages pass validation.

Both tests build and install into fresh virtual environments (with uv), so they are slow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UV = shutil.which("uv") or str(Path.home() / ".local/bin/uv")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(UV).exists() or shutil.which("git") is None, reason="needs uv and git"
    ),
]


def run(*args: str, cwd: Path | None = None, timeout: float = 120) -> str:
    env = {**os.environ, "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)  # uv must target the venv it is given, not ours
    done = subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_core_installs_from_a_git_url(tmp_path: Path) -> None:
    # A clone of HEAD stands in for the hosted repository; the working tree is untouched.
    clone = tmp_path / "repo"
    run("git", "clone", "--quiet", "--no-checkout", f"file://{REPO}", str(clone))
    commit = run("git", "-C", str(clone), "rev-parse", "HEAD").strip()
    venv = tmp_path / "venv"
    run(UV, "venv", "--quiet", "--python", sys.executable, str(venv))
    python = venv / "bin" / "python"
    url = f"git+file://{clone}@{commit}#subdirectory=packages/tta-agent-coordination"
    run(UV, "pip", "install", "--quiet", "--python", str(python), f"tta-agent-coordination @ {url}")
    assert run(str(venv / "bin" / "tta-coord"), "--version").startswith(
        "tta-coord (tta-agent-coordination) "
    )
    out = run(
        str(python),
        "-c",
        "import sys, tta_agent_coordination as t; "
        "print(t.__name__, 'fakeredis' in sys.modules, 'psycopg' in sys.modules)",
    )
    assert out.split() == ["tta_agent_coordination", "False", "False"]
    # Only the declared dependencies: no adapter, no test or dev tools.
    listing = run(UV, "pip", "list", "--python", str(python), "--format", "freeze")
    names = {line.split("==")[0].lower() for line in listing.splitlines()}
    assert "tta-agent-coordination" in names
    assert not names & {"tta-agent-coordination-postgres", "psycopg", "fakeredis", "pytest"}


def test_validate_package_script_passes_for_the_core(tmp_path: Path) -> None:
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "validate-package.sh"), "tta-agent-coordination"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert "metadata ok" in out.stdout
    assert "send/receive/ack on FakeRedis: ok" in out.stdout
