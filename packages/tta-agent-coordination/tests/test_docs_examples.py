"""The Python examples in the docs run, as written, on an embedded FakeRedis."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[3] / "docs"
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def runnable_blocks() -> list[tuple[str, str]]:
    found = []
    for page in ("worker.md",):
        for i, code in enumerate(_BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))):
            if "asyncio.run(" in code:
                found.append((f"{page}#{i}", code))
    return found


@pytest.mark.parametrize(("name", "code"), runnable_blocks())
def test_docs_example_runs(name: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
