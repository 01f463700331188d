"""`tta-coord worker` restarted at once after a crash (issue 21 item 2), and its options.

Before, a worker restarted right after `kill -9` exited 1 with AgentAlreadyRegisteredError
until the dead process's liveness expired, and the CLI had no `--takeover`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tta_agent_coordination.models import AgentId

from .helpers import send, stats

AGENT = AgentId("clitakeover", "w1")

TAKEOVER_WORKER = """
import asyncio
import os
from pathlib import Path

from tta_agent_coordination import AgentId
from tta_agent_coordination.runtime.worker import AgentWorker

LOG = Path(os.environ["WORKER_LOG"])


def factory(coordinator, registry, settings):
    agent = AgentId("clitakeover", settings.instance or "default")
    worker = AgentWorker(
        coordinator, registry, agent, poll_interval=0.1, **settings.worker_options()
    )
    done = []

    @worker.on_request()
    async def handle(ctx):
        with LOG.open("a") as log:
            log.write(f"{os.environ['MODE']} {ctx.payload['n']} {ctx.attempts}\\n")
        if os.environ["MODE"] == "hang":
            await asyncio.sleep(3600)  # holds its lease until the process dies
        done.append(ctx.payload["n"])
        if len(done) == int(os.environ["EXPECT"]):
            worker.request_stop("test done")

    return worker


def pair(coordinator, registry, settings):
    first = AgentWorker(coordinator, registry, AgentId("clipair", "a"), poll_interval=0.1)
    second = AgentWorker(coordinator, registry, AgentId("clipair", "b"), poll_interval=0.1)
    for w in (first, second):
        w.add_handler(noop)
    return [first, second]


async def noop(ctx):
    return None


def slow_to_stop(coordinator, registry):
    # Its own grace period is 30 s; --grace-period overrides it.
    worker = AgentWorker(
        coordinator, registry, AgentId("clitakeover", "w1"), poll_interval=0.1, grace_period=30
    )

    @worker.on_request()
    async def hang(ctx):
        with LOG.open("a") as log:
            log.write(f"hang {ctx.payload['n']} {ctx.attempts}\\n")
        await asyncio.sleep(3600)

    return worker
"""


@pytest.fixture
def worker_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "takeover_worker.py").write_text(TAKEOVER_WORKER)
    yield tmp_path
    sys.modules.pop("takeover_worker", None)


def _start(
    cwd: Path,
    redis_url: str,
    prefix: str,
    mode: str,
    *extra: str,
    target: tuple[str, ...] = ("takeover_worker:factory", "--instance", "w1"),
) -> subprocess.Popen[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TTA_COORD_")},
        "TTA_COORD_REDIS_URL": redis_url,
        "TTA_COORD_KEY_PREFIX": prefix,
        "TTA_COORD_VISIBILITY_TIMEOUT_S": "60",  # a lease would come back only after 60 s
        "TTA_COORD_HEARTBEAT_TTL_S": "30",  # a registration would expire only after 30 s
        "WORKER_LOG": str(cwd / "handled.log"),
        "MODE": mode,
        "EXPECT": "3",
    }
    command = [sys.executable, "-m", "tta_agent_coordination.cli", "worker"]
    command += [*target, *extra]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _handled(cwd: Path, mode: str) -> list[str]:
    log = cwd / "handled.log"
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if line.startswith(mode)]


def test_kill_9_then_takeover_resumes_the_agent_and_its_leased_messages(
    worker_dir: Path, redis_url: str, prefix: str
) -> None:
    send(redis_url, prefix, AGENT, 3)
    first = _start(worker_dir, redis_url, prefix, "hang", "--concurrency", "3")
    try:
        deadline = time.monotonic() + 30
        while len(_handled(worker_dir, "hang")) < 3:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first worker never leased the messages"
            time.sleep(0.05)
        assert stats(redis_url, prefix, AGENT).leased == 3
    finally:
        first.kill()  # SIGKILL: no deregistration, the leases stay
        first.communicate()

    # Restarted at once without --takeover: refused, with the hint.
    refused = _start(worker_dir, redis_url, prefix, "ok")
    _, err = refused.communicate(timeout=60)
    assert refused.returncode == 1, err
    assert "already registered by a live owner" in err
    assert "--takeover" in err

    started = time.monotonic()
    second = _start(worker_dir, redis_url, prefix, "ok", "--takeover")
    _, err = second.communicate(timeout=60)
    elapsed = time.monotonic() - started
    assert second.returncode == 0, err
    handled = sorted(line.split()[1] for line in _handled(worker_dir, "ok"))
    assert handled == ["0", "1", "2"]
    # Back at once (the takeover releases the dead owner's leases), not after the
    # 60 s visibility timeout or the 30 s liveness.
    assert elapsed < 25, elapsed
    assert all(line.split()[2] == "2" for line in _handled(worker_dir, "ok"))
    assert stats(redis_url, prefix, AGENT).leased == 0


def test_sigterm_stops_every_worker_of_the_process_within_the_grace_period(
    worker_dir: Path, redis_url: str, prefix: str
) -> None:
    send(redis_url, prefix, AGENT, 1)
    proc = _start(
        worker_dir,
        redis_url,
        prefix,
        "hang",
        "--grace-period",
        "0.5",
        target=("takeover_worker:slow_to_stop",),
    )
    try:
        deadline = time.monotonic() + 30
        while not _handled(worker_dir, "hang"):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert time.monotonic() - stopped < 8  # 0.5 s grace, not the worker's own 30 s
    assert "abandoned_in_flight" in err


def test_several_agents_in_one_process(
    runner: CliRunner, cli, redis_url: str, prefix: str, worker_dir: Path, monkeypatch
) -> None:
    monkeypatch.chdir(worker_dir)
    monkeypatch.setenv("WORKER_LOG", str(worker_dir / "handled.log"))
    monkeypatch.setenv("MODE", "ok")
    monkeypatch.setenv("EXPECT", "1")
    send(redis_url, prefix, AgentId("clitakeover", "default"), 1)
    args = ["--redis-url", redis_url, "--key-prefix", prefix, "worker"]
    # The pair has no stop of its own: the factory's worker stops after one message,
    # and the whole process stops with it.
    result = runner.invoke(cli, [*args, "takeover_worker:factory", "takeover_worker:pair"])
    assert result.exit_code == 0, result.output
    assert _handled(worker_dir, "ok") == ["ok 0 1"]


@pytest.mark.parametrize("option", [["--takeover"], ["--concurrency", "2"], ["--instance", "x"]])
def test_factory_options_refused_for_a_factory_without_settings(
    runner: CliRunner, cli, redis_url: str, worker_dir: Path, monkeypatch, option: list[str]
) -> None:
    (worker_dir / "two_args.py").write_text(
        "def factory(coordinator, registry):\n    raise AssertionError('not called')\n"
    )
    monkeypatch.chdir(worker_dir)
    try:
        args = ["--redis-url", redis_url, "worker", "two_args:factory", *option]
        result = runner.invoke(cli, args)
    finally:
        sys.modules.pop("two_args", None)
    assert result.exit_code == 2, result.output
    assert f"{option[0]} cannot reach the workers of two_args:factory" in result.output
