"""The demo's meeting scene: turns in join order, a silent agent's timeout, and failures."""

from __future__ import annotations

import os
from typing import Any, cast

import pytest
from rich.console import Console

from tta_agent_coordination.cli.demo import meeting_scene as meeting_scene_module
from tta_agent_coordination.cli.demo.meeting_scene import MeetingScene, MeetingSceneError
from tta_agent_coordination.cli.demo.scenario import DemoScenario, DemoSettings
from tta_agent_coordination.cli.demo.view import meeting_turns_table
from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.models import AgentId

Line = tuple[str, str, str]


def _text(renderable: Any) -> str:
    console = Console(record=True, width=200, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def _scene(client: RedisClient, prefix: str, lines: list[Line], **kw: Any) -> MeetingScene:
    return MeetingScene(
        client, prefix, lambda agent, text, level: lines.append((agent, text, level)), **kw
    )


async def _meeting_keys(client: RedisClient, meeting_id: str) -> list[str]:
    raw = cast("list[bytes | str]", await client.keys(f"*{meeting_id}*"))  # pyright: ignore[reportUnknownMemberType]
    return [k.decode() if isinstance(k, bytes) else k for k in raw]


async def test_the_meeting_goes_round_once_with_one_timeout_and_the_host_ends_it(
    coordination_redis: RedisClient, key_prefix: str
) -> None:
    lines: list[Line] = []
    scene = _scene(coordination_redis, key_prefix, lines, turn_duration=1.0)
    result = await scene.run()

    assert (result.status, result.end_reason) == ("ended", "host")
    assert [(t.turn, t.agent, t.outcome) for t in result.turns] == [
        (1, "ada", "spoke"),
        (2, "bo", "spoke"),
        (3, "dozy", "timed out"),
        (4, "gm", "spoke"),
    ]
    assert result.timeouts == ["dozy"]
    assert result.errors == []
    assert result.events[0] == "created"
    assert result.events[-1] == "ended"
    assert result.events.count("timed_out") == 1
    assert all(ok for _, _, _, ok in scene.checks()), scene.checks()
    # The events were shown as they came, the timeout among them.
    shown = [(text, level) for agent, text, level in lines if agent == "meeting (events)"]
    assert ("turn 3: dozy stayed silent, timed out", "warn") in shown
    assert ("turn 1: ada says 'the gate rusted shut the night the bell cracked'", "info") in shown
    assert shown[-1] == ("meeting ended (host)", "ok")
    table = _text(meeting_turns_table(result))
    assert "ended (host), 1 timeout(s)" in table
    assert any("dozy" in row and "timed out" in row for row in table.splitlines())
    # The scene deleted the meeting's keys; what it wrote besides is under the prefix.
    assert result.meeting_id is not None
    assert result.keys_left == 0
    assert await _meeting_keys(coordination_redis, result.meeting_id) == []
    raw = cast("list[bytes | str]", await coordination_redis.keys("*demo-tavern*"))  # pyright: ignore[reportUnknownMemberType]
    assert raw
    assert all(
        (k.decode() if isinstance(k, bytes) else k).startswith(f"{key_prefix}:") for k in raw
    )


async def test_a_speaker_that_raises_fails_the_checks_with_its_error(
    coordination_redis: RedisClient, key_prefix: str
) -> None:
    def speaker(agent: AgentId, line: str) -> str:
        if agent.instance == "bo":
            raise RuntimeError("bo lost his voice")
        return line

    scene = _scene(coordination_redis, key_prefix, [], speaker=speaker)
    result = await scene.run()

    # Nobody hangs: bo's turn times out like dozy's, and the host still ends the meeting.
    assert (result.status, result.end_reason) == ("ended", "host")
    assert result.timeouts == ["bo", "dozy"]
    assert result.errors == ["npc:bo: RuntimeError: bo lost his voice"]
    checks = {name: (actual, ok) for name, _, actual, ok in scene.checks()}
    failed = {name for name, (_, ok) in checks.items() if not ok}
    assert failed == {
        "meeting turns timed out",
        "meeting turns spoken once each, in join order",
        "meeting participants raised nothing",
    }
    assert checks["meeting participants raised nothing"][0] == (
        "npc:bo: RuntimeError: bo lost his voice"
    )
    assert checks["meeting turns timed out"][0] == "2 (bo, dozy)"
    assert checks["meeting turns spoken once each, in join order"][0] == "ada → gm"
    assert result.keys_left == 0


async def test_a_meeting_that_does_not_end_in_time_stops_the_scene_with_the_reason(
    coordination_redis: RedisClient, key_prefix: str
) -> None:
    # Turns far longer than the scene's patience: dozy's silence outlasts it.
    scene = _scene(coordination_redis, key_prefix, [], turn_duration=30.0, wait_s=0.5)
    with pytest.raises(MeetingSceneError, match=r"the meeting did not end within 0.5s"):
        await scene.run()
    assert scene.result.status == "not run"
    assert scene.result.meeting_id is not None
    assert scene.result.timeouts == []


@pytest.mark.slow
async def test_the_demo_reports_a_failing_meeting_scene_among_its_problems(
    coordination_redis: RedisClient, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hoarse(agent: AgentId, line: str) -> str:
        if agent.instance == "ada":
            raise RuntimeError("ada is hoarse")
        return line

    monkeypatch.setattr(meeting_scene_module, "say_line", hoarse)
    scenario = DemoScenario(
        coordination_redis, key_prefix, DemoSettings(pause_s=0, tta_scene=False, plan_scene=False)
    )
    result = await scenario.run()
    assert not result.ok
    assert result.meeting is not None
    assert result.meeting.status == "ended"
    assert any(
        p.startswith("meeting turns spoken once each, in join order: expected ada → bo → gm")
        for p in result.problems
    ), result.problems
    assert (
        "meeting participants raised nothing: expected none, "
        "got npc:ada: RuntimeError: ada is hoarse"
    ) in result.problems
    # The rest of the demo still ran and kept its guarantees.
    assert result.answered == 6
    assert result.unsettled == 0


async def test_the_demo_runs_the_scene_in_act_0_and_it_can_be_turned_off(
    coordination_redis: RedisClient, key_prefix: str
) -> None:
    on = DemoScenario(coordination_redis, key_prefix, DemoSettings(tta_scene=False))
    assert on.meeting is not None
    await on.meeting.stop()
    await on.coordinator.aclose()

    off = DemoScenario(coordination_redis, key_prefix, DemoSettings(meeting_scene=False))
    assert off.meeting is None
    assert off._meeting_checks() == []  # pyright: ignore[reportPrivateUsage]
    await off.coordinator.aclose()
