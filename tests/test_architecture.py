"""The layout rules of docs/architecture.md, checked so that breaking one fails CI.

* The import layers: ``lint-imports`` (import-linter) checks the contracts in the root
  ``pyproject.toml``; an import that points up a layer fails here.
* Module size: no module of the core is over ``MAX_LINES`` lines unless
  docs/architecture.md names it with the reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "packages" / "tta-agent-coordination" / "src" / "tta_agent_coordination"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MAX_LINES = 500


def _lint_imports() -> list[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("lint-imports (import-linter, in the dev group) is not installed")
    return [exe, "--no-cache"]


def test_import_layers_hold() -> None:
    run = subprocess.run(
        _lint_imports(), cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "broken" not in run.stdout.lower().replace("0 broken", "")


def _documented_exceptions() -> set[str]:
    """Modules docs/architecture.md allows to be long: ``long: `path` — reason`` lines."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    return set(re.findall(r"^- long: `([^`]+)`", text, flags=re.MULTILINE))


def test_no_core_module_is_over_the_size_limit_unless_documented() -> None:
    allowed = _documented_exceptions()
    too_long = {
        str(path.relative_to(CORE)): n
        for path in CORE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
        and str(path.relative_to(CORE)) not in allowed
    }
    assert not too_long, f"modules over {MAX_LINES} lines, not explained in docs: {too_long}"


def test_every_documented_exception_exists_and_is_long() -> None:
    for rel in _documented_exceptions():
        path = CORE / rel
        assert path.is_file(), f"docs/architecture.md names a missing module: {rel}"
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines > MAX_LINES, f"{rel} is {lines} lines: drop it from the exceptions"
