"""The README's install routes: documented as the script runs them, and each one works.

``scripts/check-install-routes`` installs through every route of the README's "Install"
section in fresh environments (see its docstring); the slow tests run it, as CI does, and
its index route (the release workflow's TestPyPI check) against a local package index.
The fast tests hold the README to the exact commands the script runs, and check the
script's own rules (workspace packages, arguments, the candidate-index project) and the
smoke test's failures.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
EXAMPLE = ROOT / "examples" / "host-workspace"
UV = shutil.which("uv")


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_install_routes", SCRIPTS / "check-install-routes.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


routes = _load_script()


def _install_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]


def _needs_uv() -> None:
    if UV is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("uv is not on the PATH; CI must check the install routes")
        pytest.skip("uv is not on the PATH")


# --- the README shows what the script runs ------------------------------------------------


@pytest.mark.parametrize("command", routes.README_COMMANDS)
def test_the_readme_shows_each_command_the_script_runs(command: str) -> None:
    assert command in _install_section()


def test_the_readme_marks_which_routes_work_today() -> None:
    section = _install_section()
    rows = {
        cells[0]: cells[1]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| route")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
        if not set(cells[0]) <= {"-"}
    }
    assert rows == {
        "git URL (uv)": "today",
        "local wheels (pip)": "today",
        "workspace member (uv)": "today",
        "PyPI": "after the first release",
    }
    assert "scripts/check-install-routes" in section


def test_the_readme_workspace_snippet_is_the_example_configuration() -> None:
    """The README's members/sources (in a host repo) are the example's (in this repo)."""
    snippet = re.findall(r"```toml\n(.*?)```", _install_section(), flags=re.DOTALL)
    assert len(snippet) == 1
    in_this_repo = snippet[0].replace(
        "vendor/tta-agent-coordination/packages/*", "../../packages/*"
    )
    assert in_this_repo in (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")


def test_the_example_depends_on_every_workspace_package() -> None:
    example = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))
    sources = example["tool"]["uv"]["sources"]
    assert {p.name for p in routes.workspace_packages()} <= set(sources)
    assert all(source == {"workspace": True} for source in sources.values())


# --- the script's own rules ---------------------------------------------------------------


def test_workspace_packages_are_the_members_with_their_import_names() -> None:
    found = routes.workspace_packages()
    assert [(p.name, p.module) for p in found][:2] == [
        ("tta-agent-coordination", "tta_agent_coordination"),
        ("tta-agent-coordination-postgres", "tta_agent_coordination_postgres"),
    ]
    assert {p.path for p in found} == {
        p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file()
    }


def _workspace(tmp_path: Path, members: str, package: str, module_dir: str | None) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        f"[tool.uv.workspace]\nmembers = {members}\n", encoding="utf-8"
    )
    member = tmp_path / "packages" / package
    member.mkdir(parents=True)
    (member / "pyproject.toml").write_text(f'[project]\nname = "{package}"\n', encoding="utf-8")
    if module_dir is not None:
        (member / "src" / module_dir).mkdir(parents=True)
        (member / "src" / module_dir / "__init__.py").write_text("", encoding="utf-8")
    return tmp_path


def test_a_new_member_is_found_without_any_edit(tmp_path: Path) -> None:
    root = _workspace(tmp_path, '["packages/*"]', "tta-agents", "tta_agents")
    assert [(p.name, p.module) for p in routes.workspace_packages(root)] == [
        ("tta-agents", "tta_agents")
    ]


def test_a_member_whose_import_name_differs_is_refused(tmp_path: Path) -> None:
    root = _workspace(tmp_path, '["packages/*"]', "tta-agents", "agents")
    with pytest.raises(routes.RouteError, match=r"no src/tta_agents/__init__\.py"):
        routes.workspace_packages(root)


def test_a_workspace_without_members_is_refused(tmp_path: Path) -> None:
    root = _workspace(tmp_path, "[]", "tta-agents", "tta_agents")
    with pytest.raises(routes.RouteError, match="lists no workspace members"):
        routes.workspace_packages(root)


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["wheels", "pypi"], "unknown route(s) pypi"),
        (["--index-url", "https://example.invalid/simple/"], "--index-url needs --version"),
        (["git", "--index-url", "https://x.invalid/", "--version", "1"], "replaces the routes"),
    ],
)
def test_bad_arguments_are_usage_errors(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        routes.parse_args(argv)
    assert exit_info.value.code == 2
    assert error in capsys.readouterr().err


def test_the_index_project_takes_only_our_packages_from_the_candidate_index(
    tmp_path: Path,
) -> None:
    ctx = routes.Context(tmp_path, sys.executable, routes.workspace_packages())
    project = routes.index_project(ctx, "https://test.pypi.org/simple/", "1.2.3")
    config = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["tool"]["uv"]["index"] == [
        {"name": "candidate", "url": "https://test.pypi.org/simple/", "explicit": True}
    ]
    names = [p.name for p in ctx.packages]
    assert config["tool"]["uv"]["sources"] == {n: {"index": "candidate"} for n in names}
    assert config["project"]["dependencies"] == [
        "tta-agent-coordination[postgres,testing]==1.2.3",
        *(f"{n}==1.2.3" for n in names if n != "tta-agent-coordination"),
    ]


# --- the smoke test -----------------------------------------------------------------------


def _smoke(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTA_COORD_")}
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "check-install-routes-smoke.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_the_smoke_test_passes_in_this_environment() -> None:
    done = _smoke("tta_agent_coordination", "tta_agent_coordination_postgres")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke: send/receive/ack on FakeRedis: ok" in done.stdout
    assert "smoke: tta-coord doctor (without a server): ok" in done.stdout


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["tta_agent_coordination", "tta_not_installed"], "cannot import tta_not_installed"),
        (["tta_agent_coordination", "--version", "99.0.0"], "expected '99.0.0'"),
        (["tta_agent_coordination_postgres"], "tta_agent_coordination must be one of"),
    ],
)
def test_the_smoke_test_fails_clearly(args: list[str], error: str) -> None:
    done = _smoke(*args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert error in done.stderr


# --- the routes themselves (slow: fresh environments) -------------------------------------


def _run_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    return subprocess.run(
        ["bash", str(SCRIPTS / "check-install-routes"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_readme_install_route_works() -> None:
    _needs_uv()
    done = _run_script()
    assert done.returncode == 0, done.stdout + done.stderr
    for route in ("wheels", "git", "workspace", "host-tests"):
        assert re.search(rf"^route {route}: ok ", done.stdout, re.MULTILINE), done.stdout


def _simple_index(dist: Path, root: Path) -> str:
    """A PEP 503 index of the wheels in ``dist``, as file:// pages (a stand-in TestPyPI)."""
    for wheel in sorted(dist.glob("*.whl")):
        project = wheel.name.split("-", 1)[0].replace("_", "-").lower()
        page = root / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        with page.open("a", encoding="utf-8") as out:
            out.write(f'<a href="{wheel.as_uri()}">{html.escape(wheel.name)}</a>\n')
    return root.as_uri() + "/"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_release_smoke_installs_a_published_version_from_its_index(tmp_path: Path) -> None:
    _needs_uv()
    assert UV is not None
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    subprocess.run(
        [UV, "build", "--quiet", "--all-packages", "--wheel", "--out-dir", str(tmp_path / "dist")],
        cwd=ROOT,
        check=True,
        timeout=180,
        env=env,
    )
    index = _simple_index(tmp_path / "dist", tmp_path / "simple")
    version = routes.workspace_packages()[0].path.joinpath("src", "tta_agent_coordination")
    found = re.search(r'__version__ = "([^"]+)"', (version / "__init__.py").read_text("utf-8"))
    assert found is not None

    done = _run_script("--index-url", index, "--version", found.group(1), "--attempts", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "route index: ok" in done.stdout

    missing = _run_script("--index-url", index, "--version", "99.0.0", "--attempts", "1")
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert "route index: FAIL" in missing.stdout
    assert "99.0.0" in missing.stdout
