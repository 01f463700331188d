"""The demo's plan scene: a rule-planned run with a retry and a replan, and its failure."""

from __future__ import annotations

import os
from typing import Any, cast

import pytest
from rich.console import Console

from tta_agent_coordination.cli.demo import plan_scene as plan_scene_module
from tta_agent_coordination.cli.demo.plan_scene import PlanScene
from tta_agent_coordination.cli.demo.scenario import DemoScenario, DemoSettings
from tta_agent_coordination.cli.demo.view import plan_steps_table, render_snapshot
from tta_agent_coordination.clients import RedisClient

Line = tuple[str, str, str]


def _text(renderable: Any) -> str:
    console = Console(record=True, width=200, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def _scene(client: RedisClient, prefix: str, lines: list[Line], **kw: Any) -> PlanScene:
    return PlanScene(
        client, prefix, lambda agent, text, level: lines.append((agent, text, level)), **kw
    )


async def test_the_run_completes_with_one_retry_and_one_replan(
    coordination_redis: RedisClient, key_prefix: str
) -> None:
    lines: list[Line] = []
    scene = _scene(coordination_redis, key_prefix, lines)
    result = await scene.run()

    assert result.status == "completed", result.reason
    assert [(r.plan_version, r.step_id, r.attempt, r.result.ok) for r in result.attempts] == [
        (1, "gather_lore", 1, False),
        (1, "gather_lore", 2, True),
        (1, "outline", 1, True),
        (1, "check_canon", 1, True),
        (2, "fill_gap", 1, True),
        (2, "write_quest", 1, True),
    ]
    assert (result.retried, result.replans, result.unsettled) == (1, 1, 0)
    # Each attempt's request ran once, under its deterministic id.
    assert result.rerun == []
    assert sorted(e.message_id for e in result.executions) == sorted(
        f"run:{result.run_id}:{r.key}" for r in result.attempts
    )
    assert {e.by for e in result.executions if e.kind == "outline"} == {"quest_writer:qw-1"}
    assert result.events[0] == "created"
    assert result.events[-2:] == ["completed", "message"]
    assert result.messages[-1] == "the quest is completed after 6 step attempts"
    assert all(ok for _, _, _, ok in scene.checks()), scene.checks()
    # The run's events were shown as they came, the failure and the replan among them.
    shown = [(text, level) for agent, text, level in lines if agent == "plan run (events)"]
    assert ("step gather_lore failed: the archive is locked", "warn") in shown
    assert ("replanned: fill_gap → write_quest", "info") in shown
    assert ("run completed: every step ran", "ok") in shown
    table = _text(plan_steps_table(result))
    assert "failed: the archive is locked" in table
    failed_by = next(e.by for e in result.executions if not e.ok)
    assert any(failed_by in row and "failed" in row for row in table.splitlines())
    assert "completed, 1 replan(s)" in table
    # Every key the scene wrote is under the demo's prefix (the demo deletes it).
    raw = cast("list[bytes | str]", await coordination_redis.keys(f"*{result.run_id}*"))  # pyright: ignore[reportUnknownMemberType]
    keys = [k.decode() if isinstance(k, bytes) else k for k in raw]
    assert keys
    assert all(k.startswith(f"{key_prefix}:") for k in keys)


async def test_a_step_that_always_fails_fails_the_run_and_its_checks(
    coordination_redis: RedisClient, key_prefix: str
) -> None:
    lines: list[Line] = []
    scene = _scene(coordination_redis, key_prefix, lines, failures={"gather_lore": 99})
    result = await scene.run()

    assert result.status == "budget_exhausted"
    assert [(r.step_id, r.attempt, r.result.ok) for r in result.attempts] == [
        ("gather_lore", 1, False),
        ("gather_lore", 2, False),
        ("gather_lore", 3, False),
    ]
    checks = {name: (actual, ok) for name, _, actual, ok in scene.checks()}
    failed = {name for name, (_, ok) in checks.items() if not ok}
    assert failed == {
        "plan run completed",
        "plan steps retried after a failure",
        "plan replanned by the reflection",
    }
    actual, _ = checks["plan run completed"]
    assert str(actual) == (
        "budget_exhausted (step 'gather_lore' failed 3 times (max_retries_per_step=2))"
    )
    assert checks["plan step requests run once each"][1]  # a failure is still run once
    errors = [text for agent, text, level in lines if level == "error"]
    assert errors == [
        "run budget_exhausted: step 'gather_lore' failed 3 times (max_retries_per_step=2)"
    ]
    assert result.unsettled == 0


async def test_a_step_no_agent_takes_ends_the_run_at_its_deadline(
    coordination_redis: RedisClient, key_prefix: str
) -> None:
    scene = _scene(coordination_redis, key_prefix, [], step_timeout_s=1.0)
    # No lore keeper takes the first step: the run's own time budget ends it.
    scene.agents = [a for a in scene.agents if not a[0].startswith("lore_keeper:")]
    result = await scene.run()
    assert result.status == "budget_exhausted"
    assert result.attempts == []
    checks = {name: (actual, ok) for name, _, actual, ok in scene.checks()}
    actual, ok = checks["plan run completed"]
    assert not ok
    assert str(actual).startswith("budget_exhausted (")
    assert "did not end in" not in str(actual)
    assert not checks["plan step requests run once each"][1]  # nothing ran
    assert all(worker.state.value == "stopped" for _, _, worker in scene.agents)


async def test_a_run_that_no_driver_advances_stops_the_scene_with_the_reason(
    coordination_redis: RedisClient, key_prefix: str
) -> None:
    scene = _scene(coordination_redis, key_prefix, [], step_timeout_s=0.5)
    scene.agents = [a for a in scene.agents if not a[0].startswith("plan_runtime.")]
    with pytest.raises(
        plan_scene_module.PlanSceneError, match=r"did not end within 1s \(is a driver running\?\)"
    ):
        await scene.run()
    assert scene.result.status == "not run"
    assert all(worker.state.value == "stopped" for _, _, worker in scene.agents)


@pytest.mark.slow
async def test_the_demo_reports_a_failing_plan_scene_among_its_problems(
    coordination_redis: RedisClient, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plan_scene_module, "FAILS_ONCE", {"gather_lore": 99})
    scenario = DemoScenario(
        coordination_redis, key_prefix, DemoSettings(pause_s=0, tta_scene=False)
    )
    result = await scenario.run()
    assert not result.ok
    assert result.plan is not None
    assert result.plan.status == "budget_exhausted"
    assert result.problems[0].startswith(
        "plan run completed: expected completed, got budget_exhausted (step 'gather_lore'"
    )
    # The rest of the demo still ran and kept its guarantees.
    assert result.answered == 6
    assert result.unsettled == 0


async def test_the_live_view_lists_the_plan_agents_and_the_scene_can_be_turned_off(
    coordination_redis: RedisClient, key_prefix: str
) -> None:
    scenario = DemoScenario(coordination_redis, key_prefix, DemoSettings(tta_scene=False))
    assert scenario.plan is not None
    view = _text(render_snapshot(scenario.snapshot()))
    for label in ("lore_keeper:lk-1", "lore_keeper:lk-2", "quest_writer:qw-1"):
        assert label in view
    assert "plan_runtime.demo:driver-1" in view
    await scenario.plan.stop()
    await scenario.coordinator.aclose()

    off = DemoScenario(coordination_redis, key_prefix, DemoSettings(plan_scene=False))
    assert off.plan is None
    assert not [c for c in off.snapshot().agents if c.label.startswith("lore_keeper")]
    await off.coordinator.aclose()
