"""The documentation site builds without a warning, and every code example on it works.

- ``mkdocs build --strict`` (Material, mkdocstrings API reference, mermaid) fails on any
  warning: a broken link or anchor, a page missing from the nav, a docstring mkdocstrings
  cannot render.
- Every ```python block of ``docs/`` and ``README.md``:
  * a complete program (it calls ``asyncio.run(``) runs in a subprocess, as written, on
    the embedded FakeRedis, and must exit 0;
  * a pytest example (its first line is ``# test_<name>.py``) runs with pytest and the
    page's ``# conftest.py`` block, on FakeRedis (``--coordination-backend=fake``);
  * any other block is a fragment and must compile (top-level ``await`` allowed).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.DOTALL | re.MULTILINE,
)
_TEST_FILE = re.compile(r"^# (test_\w+\.py)\s*$")
_CONFTEST = re.compile(r"^# conftest\.py\s*$")
_QUIET = {"NO_MKDOCS_2_WARNING": "1"}  # Material's end-of-life banner, not a warning


@dataclass(frozen=True)
class Block:
    """One ```python block of a page."""

    page: Path
    index: int
    line: int
    code: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def first_line(self) -> str:
        return self.code.splitlines()[0] if self.code.strip() else ""

    @property
    def kind(self) -> str:
        if _TEST_FILE.match(self.first_line):
            return "pytest"
        if _CONFTEST.match(self.first_line):
            return "conftest"
        if "asyncio.run(" in self.code:
            return "program"
        return "fragment"


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found: list[Block] = []
    for i, match in enumerate(_FENCE.finditer(text)):
        line = text.count("\n", 0, match.start()) + 1
        code = textwrap.dedent(match.group("code"))
        found.append(Block(page, i, line, code))
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def _params(kind: str) -> list[object]:
    return [pytest.param(b, id=b.name) for b in ALL_BLOCKS if b.kind == kind]


def _env() -> dict[str, str]:
    env = {**os.environ, **_QUIET}
    env.pop("PYTEST_ADDOPTS", None)
    return env


def test_the_docs_have_examples_of_every_kind() -> None:
    kinds = {b.kind for b in ALL_BLOCKS}
    assert {"program", "pytest", "conftest", "fragment"} <= kinds
    programs = {b.page.name for b in ALL_BLOCKS if b.kind == "program"}
    assert {"index.md", "concepts.md", "worker.md", "testing.md"} <= programs


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output, output
    # The API reference was generated from the docstrings, the diagrams are mermaid.
    core = (site / "reference" / "core" / "index.html").read_text(encoding="utf-8")
    assert 'id="tta_agent_coordination.redis.coordinator.RedisMessageCoordinator.send_message"' in (
        core
    )
    postgres = (site / "reference" / "postgres" / "index.html").read_text(encoding="utf-8")
    assert 'id="tta_agent_coordination_postgres.PostgresMessageStore"' in postgres
    architecture = (site / "architecture" / "index.html").read_text(encoding="utf-8")
    assert architecture.count('class="mermaid"') >= 3
    for page in ("concepts", "testing", "operations", "plugins", "worker", "durability"):
        assert (site / page / "index.html").is_file(), page


@pytest.mark.parametrize("block", _params("program"))
def test_program_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block.code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("block", _params("pytest"))
def test_pytest_example_passes(block: Block, tmp_path: Path) -> None:
    match = _TEST_FILE.match(block.first_line)
    assert match is not None
    (tmp_path / match.group(1)).write_text(block.code, encoding="utf-8")
    for other in blocks_of(block.page):
        if other.kind == "conftest":
            (tmp_path / "conftest.py").write_text(other.code, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--coordination-backend=fake",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("block", _params("fragment") + _params("conftest"))
def test_fragment_compiles(block: Block) -> None:
    try:
        compile(block.code, block.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError as exc:
        pytest.fail(f"{block.name}: {exc}")
