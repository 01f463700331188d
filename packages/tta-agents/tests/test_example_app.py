"""``examples/tta_app``: the compat and native versions of one TTA turn agree, and the
migration guide shows their current diff.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]
APP = ROOT / "examples" / "tta_app"
GUIDE = ROOT / "docs" / "TTA_MIGRATION_GUIDE.md"
_BLOCK = re.compile(
    r"<!-- tta-app-diff:start -->\n```diff\n(?P<diff>.*?)```\n<!-- tta-app-diff:end -->",
    re.DOTALL,
)
MAX_CHANGED_LINES = 24
"""What switching the example turn from compat to native may cost, in changed lines."""


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"tta_app_{name}", APP / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def code_of(name: str) -> list[str]:
    """The module's lines after its docstring and ``from __future__`` import."""
    text = (APP / f"{name}.py").read_text(encoding="utf-8")
    tree = ast.parse(text)
    start = 0
    for node in tree.body[:2]:
        is_doc = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if is_doc or (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            start = node.end_lineno or start
    lines = text.splitlines()[start:]
    while lines and not lines[0].strip():
        lines.pop(0)
    return lines


def app_diff() -> str:
    diff = difflib.unified_diff(
        code_of("compat_app"),
        code_of("native_app"),
        "compat_app.py",
        "native_app.py",
        lineterm="",
    )
    return "\n".join(diff) + "\n"


async def test_both_versions_play_the_same_turn(coordination_redis, key_prefix):
    compat = await load("compat_app").run_turn(coordination_redis, "Go north", key_prefix)
    native = await load("native_app").run_turn(coordination_redis, "Go north", key_prefix)
    assert compat == native
    assert compat["output"] == {"normalized_text": "go north", "routing": {"intent": "go"}}
    assert compat["delivered"] is True
    assert compat["delivered_ok"] == 1


def test_the_guide_shows_the_current_diff():
    match = _BLOCK.search(GUIDE.read_text(encoding="utf-8"))
    assert match is not None, "the guide lost its tta-app-diff block"
    expected = app_diff()
    assert match.group("diff") == expected, (
        "docs/TTA_MIGRATION_GUIDE.md shows an old diff of examples/tta_app; replace the "
        f"block's content with:\n{expected}"
    )


def test_the_switch_to_native_stays_small():
    changed = [
        line
        for line in app_diff().splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert 0 < len(changed) <= MAX_CHANGED_LINES, changed
