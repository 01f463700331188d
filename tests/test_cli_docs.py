"""``docs/cli.md``'s command reference is generated from the commands and kept current.

``scripts/gen_cli_docs.py --check`` fails when a command, argument or option changed
without the page being regenerated (``uv run python scripts/gen_cli_docs.py``).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gen_cli_docs.py"
DOC = ROOT / "docs" / "cli.md"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def generator() -> Any:
    """The script as a module (it is not a package: loaded from its file)."""
    spec = importlib.util.spec_from_file_location("gen_cli_docs", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_command_reference_is_current() -> None:
    result = run("--check")
    assert result.returncode == 0, result.stderr


def test_every_command_and_option_is_in_the_reference() -> None:
    import typer.main

    gen_cli_docs = generator()
    text = gen_cli_docs.reference()
    root = typer.main.get_command(gen_cli_docs.reference_app())

    def walk(command: Any, path: str) -> None:
        assert f"`{path}`" in text, path
        for param in command.params:
            if getattr(param, "hidden", False) or param.name == "help":
                continue
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("--"):
                    assert opt in text, (path, opt)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(root, "tta-coord")
    for command in ("send", "request", "store restore", "dlq replay", "worker", "doctor"):
        assert f"### `tta-coord {command}`" in text
    assert "--iterations" not in text  # hidden


def test_a_stale_page_fails_the_check() -> None:
    page = DOC.read_text(encoding="utf-8")
    begin = page.index("<!-- BEGIN GENERATED")
    stale = page[:begin] + page[begin:].replace("--watch`", "--watchout`", 1)
    assert stale != page
    gen_cli_docs = generator()
    assert gen_cli_docs.render(stale) != stale  # what --check compares: it fails
    assert gen_cli_docs.render(stale) == page  # and a rewrite repairs it
    assert gen_cli_docs.render(page) == page
