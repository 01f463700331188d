"""Check that every install route of the README works, each in a fresh environment.

    scripts/check-install-routes [ROUTE...] [--python PY] [--redis-url URL] [--keep]
    scripts/check-install-routes --index-url URL --version V [--redis-url URL]
    scripts/check-install-routes --list-packages

Routes (all by default), each in its own temporary directory and virtual environment:

- ``wheels``: the README's local-wheel route, as written: ``uv build --all-packages``
  then ``pip install --find-links dist "tta-agent-coordination[postgres]"`` (the
  ``postgres`` extra resolves from the wheel directory, not from PyPI);
- ``git``: the README's git-URL route, ``uv add "... @ git+<repo>#subdirectory=..."`` of
  both packages in a new uv project, against this clone's HEAD (``git+file://``);
- ``workspace``: the workspace-member route, ``examples/host-workspace`` (a copy of it,
  beside a link to ``packages/``): ``uv sync`` and the example's own tests;
- ``host-tests``: the README's "Testing your agents" files (``tests/host_app``, the same
  files ``tests/test_host_app.py`` checks against the README) run by pytest in the
  ``wheels`` environment, with ``CI=true`` and no Redis server.

Each environment then runs ``check-install-routes-smoke.py``: imports every workspace
package, one send/receive/ack on FakeRedis, ``tta-coord --version`` and ``doctor``.

``--index-url`` is the release workflow's check of a published version (TestPyPI): a new
uv project takes the workspace's packages, at ``--version``, from that index only
(``explicit`` index, pinned per package) and every dependency from the default index
(PyPI), retrying while the index does not show the upload yet.

``--list-packages`` prints the workspace's packages (the members of the root
``pyproject.toml``), one per line: the one list the release workflow publishes.

Wheels are built once, and uv's cache serves every install, so a run takes seconds when
the cache is warm (and works offline with ``UV_OFFLINE=1`` once it is).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOKE = Path(__file__).with_name("check-install-routes-smoke.py")
CORE = "tta-agent-coordination"

# The README's commands, exactly as documented (tests/test_install_routes.py checks that
# each one is in its "Install" section); the routes run them with the substitutions below.
GIT_URL = "git+https://github.com/tta-agent-coordination/tta-agent-coordination"
BUILD_WHEELS = "uv build --all-packages --wheel --out-dir dist"
PIP_WHEELS = 'pip install --find-links dist "tta-agent-coordination[postgres]"'
UV_ADD_GIT = (
    f'uv add "tta-agent-coordination[postgres] @ {GIT_URL}'
    '#subdirectory=packages/tta-agent-coordination" '
    f'"tta-agent-coordination-postgres @ {GIT_URL}'
    '#subdirectory=packages/tta-agent-coordination-postgres"'
)
README_COMMANDS = [BUILD_WHEELS, PIP_WHEELS, UV_ADD_GIT]
HOST_WORKSPACE = REPO / "examples" / "host-workspace"
HOST_APP_TESTS = REPO / "tests" / "host_app"
# The smoke test needs FakeRedis: every route also installs the `testing` extra.
WITH_TESTING = ("[postgres]", "[postgres,testing]")

# Variables of the caller's environment that would steer uv, pip or pytest away from the
# fresh environment of a route (or the library's test plugin towards a real server).
_DROPPED_ENV = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_FROZEN", "UV_LOCKED", "PYTHONPATH")
_DROPPED_PREFIXES = ("TTA_COORD_", "PYTEST_", "CONDA_")


class RouteError(Exception):
    """A route's command failed or its environment is not as documented."""


@dataclass(frozen=True)
class Package:
    """A workspace member: distribution name, import name, directory."""

    name: str
    module: str
    path: Path


def workspace_packages(root: Path = REPO) -> list[Package]:
    """The members of the uv workspace at ``root`` (its ``pyproject.toml``), by name."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    workspace = config.get("tool", {}).get("uv", {}).get("workspace", {})
    excluded = {p.resolve() for pattern in workspace.get("exclude", []) for p in root.glob(pattern)}
    found: list[Package] = []
    for pattern in workspace.get("members", []):
        for member in sorted(root.glob(pattern)):
            project = member / "pyproject.toml"
            if member.resolve() in excluded or not project.is_file():
                continue
            name = tomllib.loads(project.read_text(encoding="utf-8"))["project"]["name"]
            module = name.replace("-", "_")
            if not (member / "src" / module / "__init__.py").is_file():
                raise RouteError(f"{member}: no src/{module}/__init__.py for package {name}")
            found.append(Package(name, module, member))
    if not found:
        raise RouteError(f"{root / 'pyproject.toml'} lists no workspace members")
    return sorted(found, key=lambda p: p.name)


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _DROPPED_ENV and not k.startswith(_DROPPED_PREFIXES) and k != "CI"
    }
    env.update(UV_NO_PROGRESS="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    log(f"({cwd.name}) $ {shlex.join(args)}")
    try:
        done = subprocess.run(
            args,
            cwd=cwd,
            env=env or clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RouteError(f"{shlex.join(args)}: {exc}") from exc
    if done.returncode != 0:
        raise RouteError(
            f"{shlex.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}".rstrip()
        )
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Context:
    """What the routes share: the work directory, the interpreter, the built wheels."""

    work: Path
    python: str
    packages: list[Package]
    redis_url: str | None = None
    venvs: dict[str, Path] = field(default_factory=dict)
    _dist: Path | None = None

    @property
    def modules(self) -> list[str]:
        return [p.module for p in self.packages]

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(UV_PYTHON=self.python, **extra)

    def dist(self) -> Path:
        """The workspace's wheels, built once (the README's build command)."""
        if self._dist is None:
            out = self.work / "dist"
            args = shlex.split(BUILD_WHEELS)
            args[args.index("dist")] = str(out)
            run(args, REPO, self.env())
            self._dist = out
        return self._dist

    @property
    def others(self) -> list[Package]:
        """Members beyond the two of the README's commands (installed the same way)."""
        return [p for p in self.packages if p.name not in (CORE, f"{CORE}-postgres")]

    def smoke(self, python: Path, cwd: Path, *extra: str, modules: list[str] | None = None) -> None:
        redis = ["--redis-url", self.redis_url] if self.redis_url else []
        wanted = self.modules if modules is None else modules
        out = run([str(python), str(SMOKE), *wanted, *redis, *extra], cwd, self.env())
        if not out.rstrip().endswith("smoke: ok"):
            raise RouteError(f"the smoke test did not finish:\n{out}")


def venv(ctx: Context, name: str) -> Path:
    path = ctx.work / name
    run(["uv", "venv", "--quiet", "--seed", str(path)], ctx.work, ctx.env())
    ctx.venvs[name] = path
    return path


def route_wheels(ctx: Context) -> None:
    """``uv build --all-packages`` once, then the README's ``pip install --find-links``."""
    ctx.dist()
    env = venv(ctx, "wheels-venv")
    pip = str(env / "bin" / "pip")
    install = shlex.split(PIP_WHEELS.replace(*WITH_TESTING))
    run([pip, *install[1:]], ctx.work, ctx.env())  # cwd: the README's relative `dist`
    others = [p.name for p in ctx.others]
    if others:  # packages added after the README's command: installed the same way
        run([pip, "install", "--find-links", "dist", *others], ctx.work, ctx.env())
    ctx.smoke(env / "bin" / "python", ctx.work)


def route_host_tests(ctx: Context) -> None:
    """The README's testing files (tests/host_app) in the wheels environment, no server."""
    if "wheels-venv" not in ctx.venvs:
        route_wheels(ctx)
    python = ctx.venvs["wheels-venv"] / "bin" / "python"
    copy = ctx.work / "host_app"
    shutil.copytree(HOST_APP_TESTS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    env = ctx.env(CI="true", TTA_COORD_TEST_REDIS_URL=nowhere)
    out = run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q"], copy, env)
    if " passed" not in out or " skipped" in out:
        raise RouteError(f"the host's tests did not all pass on FakeRedis:\n{out}")


def head_commit() -> str:
    commit = run(["git", "rev-parse", "HEAD"], REPO).strip()
    dirty = run(["git", "status", "--porcelain", "--", "packages"], REPO).strip()
    if dirty:
        log("packages/ has uncommitted changes: the git route installs HEAD without them")
    return commit


def route_git(ctx: Context) -> None:
    """The README's ``uv add "... @ git+...#subdirectory=..."``, against this clone's HEAD."""
    project = ctx.work / "git-project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "git-route"\nversion = "0"\nrequires-python = ">=3.11"\n'
        "dependencies = []\n",
        encoding="utf-8",
    )
    local = f"git+file://{REPO}@{head_commit()}"
    add = shlex.split(UV_ADD_GIT.replace(GIT_URL, local).replace(*WITH_TESTING))
    run(add, project, ctx.env())
    for package in ctx.others:  # the same form, one subdirectory each
        subdirectory = package.path.relative_to(REPO).as_posix()
        run(
            ["uv", "add", f"{package.name} @ {local}#subdirectory={subdirectory}"],
            project,
            ctx.env(),
        )
    ctx.smoke(project / ".venv" / "bin" / "python", project)


def route_workspace(ctx: Context) -> None:
    """examples/host-workspace: ``uv sync``, its tests, the smoke test in its environment."""
    tree = ctx.work / "tree"
    example = tree / "examples" / HOST_WORKSPACE.name
    # The example's members are ../../packages/*: the copy gets the packages beside it, as
    # they are in the working tree (a symlink would not do: uv resolves members' links),
    # and the root pyproject.toml, where a member's `{ workspace = true }` sources resolve
    # (in a host's repository, the submodule has it).
    skip = shutil.ignore_patterns(".venv", "uv.lock", "__pycache__", ".*_cache", "tests")
    example.parent.mkdir(parents=True)
    shutil.copy2(REPO / "pyproject.toml", tree / "pyproject.toml")
    for package in ctx.packages:
        shutil.copytree(package.path, tree / package.path.relative_to(REPO), ignore=skip)
    shutil.copytree(HOST_WORKSPACE, example, ignore=shutil.ignore_patterns(".venv", "uv.lock"))
    run(["uv", "sync", "--quiet"], example, ctx.env())
    pytest = ["uv", "run", "--quiet", "pytest", "-q", "-p", "no:cacheprovider"]
    out = run(pytest, example, ctx.env())
    if " passed" not in out or " skipped" in out:
        raise RouteError(f"the example's tests did not all pass:\n{out}")
    # The example app depends on the core and the Postgres store only (every member
    # is in its workspace, installed when a dependency names it).
    base = [p.module for p in ctx.packages if p not in ctx.others]
    ctx.smoke(example / ".venv" / "bin" / "python", example, modules=base)


ROUTES: dict[str, Callable[[Context], None]] = {
    "wheels": route_wheels,
    "git": route_git,
    "workspace": route_workspace,
    "host-tests": route_host_tests,
}


def index_project(ctx: Context, index_url: str, version: str) -> Path:
    project = ctx.work / "index-project"
    project.mkdir()
    deps = [f"{CORE}[postgres,testing]=={version}"]
    deps += [f"{p.name}=={version}" for p in ctx.packages if p.name != CORE]
    sources = "".join(f'"{p.name}" = {{ index = "candidate" }}\n' for p in ctx.packages)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "index-route"\nversion = "0"\nrequires-python = ">=3.11"\n'
        f"dependencies = [{', '.join(repr(d) for d in deps)}]\n\n"
        # Only our packages come from the candidate index; every dependency from PyPI, so a
        # look-alike upload on the candidate index can never stand in for one.
        f'[[tool.uv.index]]\nname = "candidate"\nurl = "{index_url}"\nexplicit = true\n\n'
        f"[tool.uv.sources]\n{sources}",
        encoding="utf-8",
    )
    return project


def check_index(ctx: Context, index_url: str, version: str, attempts: int, wait: float) -> None:
    """Install every workspace package at ``version`` from ``index_url``, then smoke-test."""
    project = index_project(ctx, index_url, version)
    for attempt in range(1, attempts + 1):
        try:
            fresh = [arg for p in ctx.packages for arg in ("--refresh-package", p.name)]
            run(["uv", "sync", *fresh], project, ctx.env())
            break
        except RouteError as exc:
            if attempt == attempts:
                raise
            # A new upload takes a while to appear in the index's simple API.
            log(f"attempt {attempt}/{attempts} failed, retrying in {wait:.0f} s: {exc}")
            time.sleep(wait)
    ctx.smoke(project / ".venv" / "bin" / "python", project, "--version", version)


def timed(name: str, check: Callable[[], None]) -> tuple[str, bool, str]:
    started = time.perf_counter()
    try:
        check()
    except RouteError as exc:
        return name, False, f"FAIL ({time.perf_counter() - started:.1f} s)\n{exc}"
    return name, True, f"ok ({time.perf_counter() - started:.1f} s)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="check-install-routes",
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("routes", nargs="*", metavar="ROUTE", help=", ".join(ROUTES))
    parser.add_argument("--python", default=os.environ.get("UV_PYTHON") or sys.executable)
    parser.add_argument("--redis-url", help="a server for tta-coord doctor (all checks must pass)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--list-packages", action="store_true", help="print the packages")
    parser.add_argument("--index-url", help="install the packages from this index instead")
    parser.add_argument("--version", help="the version to install from --index-url")
    parser.add_argument("--attempts", type=int, default=10, help="tries for --index-url")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds between tries")
    args = parser.parse_args(argv)
    unknown = [r for r in args.routes if r not in ROUTES]
    if unknown:
        parser.error(f"unknown route(s) {', '.join(unknown)}: choose from {', '.join(ROUTES)}")
    if args.index_url and not args.version:
        parser.error("--index-url needs --version")
    if args.index_url and args.routes:
        parser.error("--index-url replaces the routes: give one or the other")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        packages = workspace_packages()
    except RouteError as exc:
        log(str(exc))
        return 2
    if args.list_packages:
        print("\n".join(p.name for p in packages))
        return 0
    if shutil.which("uv") is None:
        log("uv is not on the PATH (scripts/check-install-routes installs it)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="install-routes-"))
    ctx = Context(work, args.python, packages, redis_url=args.redis_url)
    log(f"work directory {work}; packages: {', '.join(p.name for p in packages)}")
    if args.index_url:
        index = (args.index_url, args.version, args.attempts, args.wait)
        checks = {"index": lambda: check_index(ctx, *index)}
    else:
        chosen = args.routes or list(ROUTES)
        checks = {name: (lambda fn=ROUTES[name]: fn(ctx)) for name in chosen}
    results = [timed(name, check) for name, check in checks.items()]
    for name, _, text in results:
        print(f"route {name}: {text}")
    if args.keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
