"""The release workflow: gated in order, from a tag only, trusted publishing, every package.

``.github/workflows/release.yml`` must run build + validation -> TestPyPI -> a smoke
install from TestPyPI -> PyPI, each step ``needs`` the one before, and only the two
publishing jobs get ``id-token: write`` (and run none of the repository's code). The
package list is the workspace's (``scripts/check-install-routes --list-packages``), so no
package name is written in the workflow. ``release_problems`` states every rule once; the
mutation tests below prove that it notices when one is broken.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
LIST_PACKAGES = [
    sys.executable,
    str(ROOT / "scripts" / "check-install-routes.py"),
    "--list-packages",
]
TESTPYPI_UPLOAD = "https://test.pypi.org/legacy/"
TESTPYPI_SIMPLE = "https://test.pypi.org/simple/"
PUBLISH_ACTION = "pypa/gh-action-pypi-publish@"
PUBLISHERS = {"testpypi": "testpypi", "publish": "pypi"}  # job -> its GitHub environment


def load() -> dict[Any, Any]:
    data = yaml.safe_load(RELEASE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def needs(job: dict[str, Any]) -> set[str]:
    value = job.get("needs", [])
    return {value} if isinstance(value, str) else set(value)


def upstream(jobs: dict[str, Any], name: str) -> set[str]:
    """Every job that must finish before ``name`` starts (``needs``, transitively)."""
    seen: set[str] = set()
    todo = list(needs(jobs[name]))
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(needs(jobs[current]))
    return seen


def steps_text(job: dict[str, Any]) -> list[str]:
    return [str(step.get("run", "")) + str(step.get("uses", "")) for step in job["steps"]]


def first_step(job: dict[str, Any], needle: str) -> int:
    """Index of the first step whose command or action contains ``needle`` (-1: none)."""
    return next((i for i, text in enumerate(steps_text(job)) if needle in text), -1)


def release_problems(workflow: dict[Any, Any]) -> list[str]:
    problems: list[str] = []
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on` as True
    if triggers != {"push": {"tags": ["v*"]}}:
        problems.append(f"trigger: only a push of a v* tag, got {triggers}")
    if workflow.get("permissions") != {"contents": "read"}:
        problems.append(
            f"workflow permissions: contents: read only, got {workflow.get('permissions')}"
        )
    jobs: dict[str, Any] = workflow.get("jobs", {})
    if set(jobs) != {"build", *PUBLISHERS, "smoke-testpypi"}:
        return [*problems, f"jobs: build, testpypi, smoke-testpypi, publish; got {sorted(jobs)}"]

    build = jobs["build"]
    if "github.ref_type == 'tag'" not in str(build.get("if", "")):
        problems.append("build: must run only for a tag (if: github.ref_type == 'tag')")
    order = [
        first_step(build, "--list-packages"),
        first_step(build, "uv build --all-packages"),
        first_step(build, "${VERSION}-py3-none-any.whl"),  # the tag == version check
        first_step(build, "scripts/validate-package.sh"),
        first_step(build, "actions/upload-artifact@"),
    ]
    if -1 in order or order != sorted(order):
        problems.append(f"build: list, build, tag check, validate, upload in order; steps {order}")

    # Gate order: each stage needs the one before it (and so all before that).
    for job, before in (
        ("testpypi", {"build"}),
        ("smoke-testpypi", {"build", "testpypi"}),
        ("publish", {"build", "testpypi", "smoke-testpypi"}),
    ):
        if not before <= upstream(jobs, job):
            problems.append(
                f"{job}: must need {sorted(before)}, needs {sorted(upstream(jobs, job))}"
            )

    # id-token only where a package is published, and those jobs run no repository code.
    for name, job in jobs.items():
        has_token = "id-token" in (job.get("permissions") or {})
        if name not in PUBLISHERS:
            if has_token:
                problems.append(f"{name}: has id-token but publishes nothing")
            continue
        if job.get("permissions") != {"id-token": "write"}:
            problems.append(f"{name}: permissions must be exactly id-token: write")
        if job.get("environment", {}).get("name") != PUBLISHERS[name]:
            problems.append(f"{name}: must run in the {PUBLISHERS[name]!r} environment")
        uses = [str(step.get("uses", "")) for step in job["steps"]]
        if any("run" in step for step in job["steps"]) or not all(
            u.startswith(("actions/download-artifact@", PUBLISH_ACTION)) for u in uses
        ):
            problems.append(f"{name}: may only download the artifact and publish it")
        publish = [s for s in job["steps"] if str(s.get("uses", "")).startswith(PUBLISH_ACTION)]
        if len(publish) != 1:
            problems.append(f"{name}: one {PUBLISH_ACTION} step")
            continue
        options = publish[0].get("with", {})
        if {"password", "user"} & set(options):
            problems.append(f"{name}: trusted publishing takes no password")
        wanted = TESTPYPI_UPLOAD if name == "testpypi" else None
        if options.get("repository-url") != wanted:
            problems.append(f"{name}: repository-url must be {wanted}")

    smoke = "\n".join(steps_text(jobs["smoke-testpypi"]))
    for needle in ("scripts/check-install-routes", f"--index-url {TESTPYPI_SIMPLE}", "--version"):
        if needle not in smoke:
            problems.append(f"smoke-testpypi: no {needle!r}")
    return problems


def test_the_release_workflow_follows_every_rule() -> None:
    assert release_problems(load()) == []


def _mutated(change: str) -> dict[Any, Any]:
    workflow = copy.deepcopy(load())
    jobs = workflow["jobs"]
    if change == "publish straight after build":
        jobs["publish"]["needs"] = "build"
    elif change == "smoke before testpypi":
        jobs["smoke-testpypi"]["needs"] = ["build"]
    elif change == "token for the smoke job":
        jobs["smoke-testpypi"]["permissions"] = {"id-token": "write"}
    elif change == "token for the whole workflow":
        workflow["permissions"] = {"contents": "read", "id-token": "write"}
    elif change == "no validation":
        jobs["build"]["steps"] = [
            s for s in jobs["build"]["steps"] if "validate-package" not in str(s.get("run"))
        ]
    elif change == "testpypi goes to pypi":
        step = next(
            s for s in jobs["testpypi"]["steps"] if "with" in s and "repository-url" in s["with"]
        )
        del step["with"]["repository-url"]
    elif change == "checkout in a publishing job":
        jobs["publish"]["steps"].insert(0, {"uses": "actions/checkout@v5"})
    elif change == "runs on branches":
        workflow["on"] = {"push": {"tags": ["v*"], "branches": ["main"]}}
    elif change == "wrong environment":
        jobs["testpypi"]["environment"] = {"name": "pypi"}
    return workflow


@pytest.mark.parametrize(
    ("change", "reported"),
    [
        ("publish straight after build", "publish: must need"),
        ("smoke before testpypi", "smoke-testpypi: must need"),
        ("token for the smoke job", "smoke-testpypi: has id-token"),
        ("token for the whole workflow", "workflow permissions"),
        ("no validation", "build: list, build, tag check, validate, upload"),
        ("testpypi goes to pypi", "testpypi: repository-url"),
        ("checkout in a publishing job", "publish: may only download"),
        ("runs on branches", "trigger"),
        ("wrong environment", "testpypi: must run in the 'testpypi' environment"),
    ],
)
def test_each_broken_rule_is_reported(change: str, reported: str) -> None:
    problems = release_problems(_mutated(change))
    assert any(p.startswith(reported) for p in problems), problems


def test_the_workflow_names_no_package_the_workspace_list_does() -> None:
    """Adding a workspace member needs no workflow edit: no package name is hard-coded."""
    text = RELEASE.read_text(encoding="utf-8")
    # Only the environments' links name the core (the project's page on each index).
    lines = [line for line in text.splitlines() if "tta-agent-coordination" in line]
    assert all(line.strip().startswith("url: https://") for line in lines), lines
    assert "tta_agent_coordination" not in text
    assert "PYPI_API_TOKEN" not in text
    assert "password" not in text


def test_the_package_list_is_the_workspace_members() -> None:
    listed = subprocess.run(
        LIST_PACKAGES, capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    members = sorted(
        tomllib.loads((p / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
        for p in (ROOT / "packages").iterdir()
        if (p / "pyproject.toml").is_file()
    )
    assert listed == members
    assert {"tta-agent-coordination", "tta-agent-coordination-postgres"} <= set(listed)


@pytest.mark.skipif(shutil.which("uv") is None, reason="validate-package.sh needs uv")
def test_validate_package_refuses_a_package_outside_the_workspace() -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "validate-package.sh"), "tta-nothing"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "unknown package tta-nothing" in done.stderr
    assert "tta-agent-coordination-postgres" in done.stderr
