"""``tta-coord runs list|show|events|cancel`` against the real Redis."""

import asyncio
import json

import pytest
from typer.testing import CliRunner

from tta_agent_coordination import RedisMessageCoordinator
from tta_agent_coordination.cli import build_app
from tta_agent_coordination.plans import PlanRuntime, RunStatus, RuntimeFlags, Task
from tta_agent_coordination.testing import (
    real_redis,
)

from .conftest import Agents
from .rules import CHECKER, WRITER, StatelessPlanner

pytestmark = pytest.mark.real_redis


def seed(url: str, prefix: str, *, drive: bool) -> str:
    """Start one run (driven to completion when ``drive``); its id."""

    async def main() -> str:
        client = await real_redis(url)
        coordinator = RedisMessageCoordinator(client, key_prefix=prefix, retry_attempts=0)
        runtime = PlanRuntime(
            coordinator, planner=StatelessPlanner(), flags=RuntimeFlags(enhanced=True)
        )
        agents = Agents(coordinator)
        worker = runtime.worker(poll_interval=0.1, grace_period=0)
        try:
            if not drive:
                return await runtime.start(Task(agent=WRITER), run_id="live-run")
            await agents.start(WRITER, "w1")
            await agents.start(CHECKER, "c1")
            await worker.start()
            result = await runtime.execute(Task(agent=WRITER), run_id="done-run", timeout=20)
            assert result.status is RunStatus.COMPLETED
            return result.run_id
        finally:
            await worker.stop(grace_period=0)
            await agents.stop()
            await coordinator.aclose()
            await client.aclose()

    return asyncio.run(main())


def invoke(url: str, prefix: str, *args: str):
    return CliRunner().invoke(
        build_app(plugins=False), ["--redis-url", url, "--key-prefix", prefix, *args]
    )


def test_runs_list_show_events_and_cancel(redis_url, prefix):
    empty = invoke(redis_url, prefix, "runs", "list")
    assert empty.exit_code == 0, empty.output
    assert "No runs." in empty.stdout

    done = seed(redis_url, prefix, drive=True)
    live = seed(redis_url, prefix, drive=False)

    listed = invoke(redis_url, prefix, "runs", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert {(r["run_id"], r["status"]) for r in json.loads(listed.stdout)} == {
        (done, "completed"),
        (live, "planning"),
    }

    shown = invoke(redis_url, prefix, "runs", "show", done, "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["status"] == "completed"
    assert [s["step_id"] for s in data["steps"]] == ["draft", "check"]
    table = invoke(redis_url, prefix, "runs", "show", done)
    assert "completed" in table.stdout
    assert "draft" in table.stdout

    streamed = invoke(redis_url, prefix, "runs", "events", done, "--json")
    assert streamed.exit_code == 0, streamed.output
    kinds = [json.loads(line)["kind"] for line in streamed.stdout.splitlines()]
    assert kinds[0] == "created"
    assert kinds[-1] == "completed"
    followed = invoke(redis_url, prefix, "runs", "events", done, "--follow")
    assert followed.exit_code == 0, followed.output
    assert "completed" in followed.stdout

    cancelled = invoke(redis_url, prefix, "runs", "cancel", live, "--reason", "ops")
    assert cancelled.exit_code == 0, cancelled.output
    assert f"Cancelled run {live}" in cancelled.stdout
    again = invoke(redis_url, prefix, "runs", "cancel", live)
    assert again.exit_code == 1
    assert "already ended (cancelled)" in again.output

    missing = invoke(redis_url, prefix, "runs", "show", "nope")
    assert missing.exit_code == 1
    assert "run 'nope' not found" in missing.output
    bad = invoke(redis_url, prefix, "runs", "show", "bad:id")
    assert bad.exit_code == 2
    assert "invalid run id" in bad.output
