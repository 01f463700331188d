"""Smoke test of one installed environment, run by that environment's own Python.

    <venv>/bin/python scripts/check-install-routes-smoke.py MODULE... [--version V]
        [--redis-url URL]

For scripts/check-install-routes (every install route of the README) and the release
workflow (the packages just published to TestPyPI). It checks, and exits 1 on the first
failure:

1. every MODULE imports (and has ``__version__`` equal to ``--version`` when given);
2. ``tta_agent_coordination.features()`` sees FakeRedis and, when the adapter is one of
   the modules, the Postgres store (loaded through its entry point, not connected);
3. one coordinator round trip on FakeRedis: send, receive, ack;
4. ``tta-coord --version`` (the console script beside this Python) names the package;
5. ``tta-coord doctor --json``: the optional parts of the installed modules are ``ok``;
   with ``--redis-url`` every required check must pass too (without one, only the
   connection checks may fail: there is no server to check).

Only the standard library and the installed packages are used.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

CORE = "tta_agent_coordination"
POSTGRES = "tta_agent_coordination_postgres"


def fail(message: str) -> NoReturn:
    sys.exit(f"smoke: FAIL: {message}")


def check_imports(modules: list[str], version: str | None) -> None:
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            fail(f"cannot import {name}: {exc}")
        found = getattr(module, "__version__", None)
        if version is not None and found != version:
            fail(f"{name}.__version__ is {found!r}, expected {version!r}")
        print(f"smoke: import {name} {found}: ok")


def check_features(modules: list[str]) -> None:
    import tta_agent_coordination as core
    from tta_agent_coordination.plugins import load_store

    found = core.features()
    if not found["fakeredis"].usable:
        fail(f"fakeredis is not usable: {found['fakeredis'].reason}")
    if POSTGRES in modules:
        if not found["postgres"].usable:
            fail(f"the postgres extra is not usable: {found['postgres'].reason}")
        store = load_store("postgres", dsn="postgresql://smoke@127.0.0.1:1/smoke")
        if type(store).__name__ != "PostgresMessageStore":
            fail(f"load_store('postgres') gave {type(store).__name__}")
    print("smoke: features: ok")


async def round_trip() -> None:
    import tta_agent_coordination as core
    from tta_agent_coordination.testing import fake_redis

    client = fake_redis()
    coordinator = core.RedisMessageCoordinator(client, key_prefix="smoke")
    sender, recipient = core.AgentId("smoke", "a"), core.AgentId("smoke", "b")
    message = core.AgentMessage(
        sender=sender, recipient=recipient, message_type=core.MessageType.REQUEST, payload={"n": 1}
    )
    try:
        if not (await coordinator.send_message(sender, recipient, message)).delivered:
            fail("send_message was not delivered")
        received = await coordinator.receive(recipient)
        if received is None or received.message.payload != {"n": 1}:
            fail(f"receive gave {received!r}")
        if not await coordinator.ack(recipient, received.token):
            fail("ack returned False")
    finally:
        await coordinator.aclose()
        await client.aclose()
    print("smoke: send/receive/ack on FakeRedis: ok")


def tta_coord(*args: str) -> subprocess.CompletedProcess[str]:
    # The console script of this environment, beside its Python (bin/ or Scripts\).
    script = Path(sys.executable).with_name("tta-coord")
    if not script.exists():
        fail(f"no tta-coord console script beside {sys.executable}")
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=60, check=False
    )


def check_cli(modules: list[str], version: str | None, redis_url: str | None) -> None:
    shown = tta_coord("--version")
    if shown.returncode != 0 or not shown.stdout.startswith("tta-coord (tta-agent-coordination) "):
        fail(f"tta-coord --version: {shown.stdout}{shown.stderr}")
    if version is not None and version not in shown.stdout:
        fail(f"tta-coord --version shows {shown.stdout.strip()!r}, expected {version}")
    print(f"smoke: {shown.stdout.strip()}: ok")

    server = ["--redis-url", redis_url] if redis_url else []
    doctor = tta_coord(*server, "doctor", "--json")
    try:
        report: dict[str, Any] = json.loads(doctor.stdout)
    except json.JSONDecodeError:
        fail(f"tta-coord doctor --json printed no JSON:\n{doctor.stdout}{doctor.stderr}")
    status = {check["name"]: check for check in report["checks"]}
    wanted = ["fakeredis"] + (["postgres"] if POSTGRES in modules else [])
    for name in wanted:
        if status.get(name, {}).get("status") != "ok":
            fail(f"tta-coord doctor: {name} is {status.get(name)}")
    failed = [c for c in report["checks"] if c["required"] and c["status"] == "fail"]
    if redis_url:
        if not report["ok"] or doctor.returncode != 0:
            fail(f"tta-coord doctor against {redis_url}: {failed}")
    elif [c["name"] for c in failed] != ["connect"]:
        # Without a server only the connection fails; anything else is a real problem.
        fail(f"tta-coord doctor: unexpected failed checks {failed}")
    print(f"smoke: tta-coord doctor ({'with' if redis_url else 'without'} a server): ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("modules", nargs="+", help="import names of the installed packages")
    parser.add_argument("--version", help="the version every module must have")
    parser.add_argument("--redis-url", help="a Redis server for tta-coord doctor")
    args = parser.parse_args()
    modules: list[str] = args.modules
    # The library's own deprecated names must not be what an install route exercises.
    warnings.filterwarnings("error", message=r"tta_agent_coordination\..* is deprecated")
    if CORE not in modules:
        fail(f"{CORE} must be one of the modules")
    check_imports(modules, args.version)
    check_features(modules)
    asyncio.run(round_trip())
    check_cli(modules, args.version, args.redis_url)
    print("smoke: ok")


if __name__ == "__main__":
    main()
