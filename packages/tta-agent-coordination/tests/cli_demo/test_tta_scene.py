"""The demo's TTA scene: tta_agents loaded at run time, its turns, and the demo without it."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

import pytest
from rich.console import Console

from tta_agent_coordination import PermanentError, RedisMessageCoordinator
from tta_agent_coordination.cli.demo import scenario as scenario_module
from tta_agent_coordination.cli.demo.scenario import DemoScenario, DemoSettings, run_demo
from tta_agent_coordination.cli.demo.tta_adapters import (
    RULES_SOURCE,
    RuleInputProcessor,
    RuleNarrator,
    RuleWorldBuilder,
    WorldStore,
)
from tta_agent_coordination.cli.demo.tta_scene import (
    TTA_AGENTS_MISSING,
    TURNS,
    WATCHER,
    TTAAgentsUnavailable,
    TTAScene,
    load_tta_agents,
)
from tta_agent_coordination.cli.demo.view import render_snapshot, tta_turns_table
from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.models import AgentId, AgentMessage, MessageType
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agents.contracts import IPAResponse, NGAResponse, WBAResponse
from tta_agents.pipeline import PIPELINE_EVENT, TTAPipeline
from tta_agents.workers import (
    InputProcessorAdapter,
    NarrativeGeneratorAdapter,
    WorldBuilderAdapter,
    ipa_worker,
)

NARRATIVES = {
    "ada": "Ada looks around the courtyard and sees a rusty gate, a well, a sleeping guard.",
    "bo": "Bo leaves the courtyard and heads for the north road.",
    "cy": "Cy opens the rusty gate; beyond it lies the gatehouse.",
}
TTA_COORD = (
    "import sys; from tta_agent_coordination.cli import main; sys.argv[0] = 'tta-coord'; main()"
)
HIDE = "import sys; sys.modules['tta_agents'] = None; "
"""Makes ``import tta_agents`` fail in a child interpreter, as if it were not installed."""


def _hide_with_find_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        if name == "tta_agents" or name.startswith("tta_agents."):
            return None
        return real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTA_COORD_")}
    env["COLUMNS"] = "200"
    return env


# --- loading tta_agents ------------------------------------------------------------------


def test_load_tta_agents_hands_back_the_packages_own_names() -> None:
    api = load_tta_agents()
    assert api.ipa_worker is ipa_worker
    assert api.pipeline is TTAPipeline
    assert api.progress_event == PIPELINE_EVENT


def test_a_package_that_is_not_installed_is_reported_not_raised_as_import_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _hide_with_find_spec(monkeypatch)
    with pytest.raises(TTAAgentsUnavailable) as caught:
        load_tta_agents()
    assert str(caught.value) == TTA_AGENTS_MISSING
    assert "tta-agents" in TTA_AGENTS_MISSING
    assert "\n" not in TTA_AGENTS_MISSING


def test_a_package_hidden_from_sys_modules_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tta_agents", None)
    with pytest.raises(TTAAgentsUnavailable, match="needs the tta-agents package"):
        load_tta_agents()


def test_an_installed_package_that_fails_to_import_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.import_module

    def import_module(name: str, package: str | None = None) -> ModuleType:
        if name.startswith("tta_agents"):
            raise ImportError("cannot import name 'TTAPipeline' (a broken install)")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(TTAAgentsUnavailable, match=r"could not be imported.*broken install"):
        load_tta_agents()


# --- the rule-based adapters -------------------------------------------------------------


async def test_the_input_processor_normalises_and_routes_by_the_first_verb() -> None:
    ipa = RuleInputProcessor("input_processor:x")
    answer = await ipa.process_input("  Open THE rusty   gate! ")
    assert IPAResponse.model_validate(dict(answer)).normalized_text == "open the rusty gate"
    assert answer["routing"] == {"intent": "interact", "target": "rusty gate", "confidence": 0.9}
    assert answer["source"] == RULES_SOURCE
    assert answer["answered_by"] == "input_processor:x"
    unknown = await ipa.process_input("xyzzy")
    assert unknown["routing"]["intent"] == "unknown"
    assert (await ipa.process_input(""))["normalized_text"] == ""


async def test_the_world_builders_share_one_store() -> None:
    store = WorldStore()
    one, two = RuleWorldBuilder("wb:1", store), RuleWorldBuilder("wb:2", store)
    first = await one.process_world_request("s1", {"weather": "rain"})
    second = await two.process_world_request("s1")
    assert WBAResponse.model_validate(dict(first)).cached is False
    assert second["cached"] is True
    assert second["answered_by"] == "wb:2"
    assert second["world_state"]["weather"] == "rain"  # wb:2 sees wb:1's update
    assert second["world_state"]["visits"] == 2
    assert (await one.process_world_request("s2"))["world_state"]["visits"] == 1
    first["world_state"]["visits"] = 99  # an answer is a copy, not the store itself
    assert (await one.process_world_request("s1"))["world_state"]["visits"] == 3


@pytest.mark.parametrize(
    ("intent", "target", "story"),
    [
        ("explore", "", "Ada looks around the courtyard and sees a well."),
        ("move", "north", "Ada leaves the courtyard and heads for the north road."),
        ("interact", "old door", "Ada opens the old door; beyond it lies the darkness."),
        ("take", "lamp", "Ada takes the lamp from the courtyard."),
        ("talk", "guard", "Ada speaks to the guard; no one in the courtyard answers."),
        ("dance", "", "Ada hesitates in the courtyard; nothing happens."),
    ],
)
async def test_the_narrator_writes_from_the_pipeline_context(
    intent: str, target: str, story: str
) -> None:
    context = {
        "player": "ada",
        "ipa_result": {"routing": {"intent": intent, "target": target}},
        "wba_result": {
            "world_state": {
                "location": "courtyard",
                "entities": ["a well"],
                "exits": {"north": "north road"},
            }
        },
    }
    answer = await RuleNarrator("ng:1").generate_narrative("p", context)
    assert NGAResponse.model_validate(dict(answer)).story == story
    assert answer["context_used"] is True


async def test_the_narrator_copes_with_an_empty_or_malformed_context() -> None:
    narrator = RuleNarrator("ng:1")
    empty = await narrator.generate_narrative("p", None)
    assert empty["story"] == "The traveller hesitates in the somewhere; nothing happens."
    assert empty["context_used"] is False
    odd = await narrator.generate_narrative("p", {"ipa_result": "x", "wba_result": [1]})
    assert "hesitates" in odd["story"]


def test_the_adapters_satisfy_tta_agents_protocols() -> None:
    assert isinstance(RuleInputProcessor("a"), InputProcessorAdapter)
    assert isinstance(RuleWorldBuilder("b", WorldStore()), WorldBuilderAdapter)
    assert isinstance(RuleNarrator("c"), NarrativeGeneratorAdapter)


# --- the scene on its own (both backends) -----------------------------------------------


@pytest.fixture
async def registries(
    coordination_redis: RedisClient,
    key_prefix: str,
    coordination_coordinator: RedisMessageCoordinator,
) -> AsyncIterator[list[RedisAgentRegistry]]:
    made: list[RedisAgentRegistry] = []
    yield made
    for registry in made:
        await registry.aclose()


def _scene(
    client: RedisClient,
    key_prefix: str,
    coordinator: RedisMessageCoordinator,
    made: list[RedisAgentRegistry],
    events: list[tuple[str, str, str]],
    **replace: Any,
) -> TTAScene:
    def registry() -> RedisAgentRegistry:
        made.append(
            RedisAgentRegistry(
                client, key_prefix=key_prefix, heartbeat_ttl_s=10, coordinator=coordinator
            )
        )
        return made[-1]

    api = dataclasses.replace(load_tta_agents(), **replace)
    return TTAScene(
        api,
        coordinator,
        registry,
        lambda agent, text, level: events.append((agent, text, level)),
        step_timeout_s=20,
        worker_options={"poll_interval": 0.2, "maintenance_interval": 0.2, "grace_period": 2},
    )


async def test_each_turn_goes_through_the_pipeline_to_the_tta_workers(
    coordination_redis: RedisClient,
    key_prefix: str,
    coordination_coordinator: RedisMessageCoordinator,
    registries: list[RedisAgentRegistry],
) -> None:
    events: list[tuple[str, str, str]] = []
    scene = _scene(coordination_redis, key_prefix, coordination_coordinator, registries, events)
    result = await scene.run()

    assert [(t.player, t.status) for t in result.turns] == [(p, "completed") for p, _ in TURNS]
    assert {t.player: t.narrative for t in result.turns} == NARRATIVES
    for turn in result.turns:
        assert turn.sources == [RULES_SOURCE] * 3  # no fallback answered
        assert turn.answered_by["ipa"] == "input_processor:ipa-1"
        assert turn.answered_by["wba"] in {"world_builder:wba-1", "world_builder:wba-2"}
        assert turn.answered_by["nga"] == "narrative_generator:nga-1"
    # The progress events arrived through a real subscription, 8 per completed turn.
    assert len(result.progress) == result.expected_progress == 8 * len(TURNS)
    assert result.progress.count("workflow_completed") == len(TURNS)
    assert any(a == "tta progress (event)" and "step_completed 1:wba" in t for a, t, _ in events)
    assert {a for a, t, lvl in events if lvl == "ok"} >= {f"player {p}" for p, _ in TURNS}
    assert result.unsettled == 0
    assert all(ok for *_, ok in scene.checks()), scene.checks()
    # Every worker stopped gracefully: registrations and the watcher's subscription are gone.
    assert all(a.worker.state.value == "stopped" for a in scene.agents)
    assert await registries[0].get(AgentId("world_builder", "wba-1")) is None
    event = AgentMessage(
        sender=WATCHER,
        recipient=WATCHER,
        message_type=MessageType.EVENT,
        payload={"event": PIPELINE_EVENT, "kind": "late"},
    )
    await coordination_coordinator.publish_event(WATCHER, event)
    assert (await coordination_coordinator.queue_stats(WATCHER)).unsettled == 0
    await scene.stop()  # idempotent


class _RefusingWorld:
    fallback_to_mock = False

    async def process_world_request(
        self, world_id: str, updates: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        raise PermanentError("the world store is closed")


async def test_a_failing_world_builder_fails_the_turns_and_the_checks(
    coordination_redis: RedisClient,
    key_prefix: str,
    coordination_coordinator: RedisMessageCoordinator,
    registries: list[RedisAgentRegistry],
) -> None:
    real = load_tta_agents().wba_worker

    def refusing(coordinator: Any, registry: Any, instance: str, _: Any, **kw: Any) -> Any:
        return real(coordinator, registry, instance, _RefusingWorld(), **kw)

    events: list[tuple[str, str, str]] = []
    scene = _scene(
        coordination_redis,
        key_prefix,
        coordination_coordinator,
        registries,
        events,
        wba_worker=refusing,
    )
    result = await scene.run()

    assert {t.status for t in result.turns} == {"failed"}
    assert all(t.narrative is None and t.steps_run == 2 for t in result.turns)
    assert all("the world store is closed" in (t.error or "") for t in result.turns)
    assert len(result.progress) == result.expected_progress == 6 * len(TURNS)
    failed = {name for name, _, _, ok in scene.checks() if not ok}
    assert failed == {
        "TTA turns completed with a narrative",
        "TTA steps answered by the rule adapters",
        "TTA world_builder requests taken by wba-1/wba-2",
    }
    errors = [t for a, t, lvl in events if lvl == "error"]
    assert len(errors) == len(TURNS)
    assert all("\n" not in t for t in errors)
    rendered = _text(tta_turns_table(result))
    assert "failed: step 1 (wba) failed" in rendered


def _text(renderable: Any) -> str:
    console = Console(record=True, width=200, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


# --- the whole demo, with and without tta_agents -----------------------------------------


@pytest.mark.slow
async def test_the_demo_opens_with_the_tta_scene_and_keeps_its_guarantees(
    coordination_redis: RedisClient, key_prefix: str
) -> None:
    scenario = DemoScenario(coordination_redis, key_prefix, DemoSettings(pause_s=0))
    assert scenario.tta is not None
    assert scenario.tta_skipped is None
    result = await scenario.run()
    assert result.ok, result.problems
    assert result.tta is not None
    assert {t.player: t.narrative for t in result.tta.turns} == NARRATIVES
    names = [c.name for c in result.checks]
    assert names.index("TTA turns completed with a narrative") > names.index(
        "messages left unsettled"
    )
    # The live view lists the TTA workers beside the demo's own.
    view = _text(render_snapshot(scenario.snapshot()))
    for label in ("input_processor:ipa-1", "world_builder:wba-2", str(WATCHER)):
        assert label in view
    assert "TTA ipa_worker (rules)" in view


@pytest.mark.slow
async def test_without_tta_agents_the_demo_runs_the_rest_as_before(
    coordination_redis: RedisClient, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide_with_find_spec(monkeypatch)
    result = await run_demo(coordination_redis, key_prefix, settings=DemoSettings(pause_s=0))
    assert result.ok, result.problems
    assert result.tta is None
    assert result.tta_skipped == TTA_AGENTS_MISSING
    assert not [c for c in result.checks if c.name.startswith("TTA")]
    assert result.answered == 6
    assert result.unsettled == 0


async def test_the_scene_can_be_turned_off(coordination_redis: RedisClient, key_prefix: str):
    scenario = DemoScenario(coordination_redis, key_prefix, DemoSettings(tta_scene=False))
    assert scenario.tta is None
    assert scenario.tta_skipped is None
    await scenario.coordinator.aclose()


@pytest.mark.slow
def test_the_program_prints_each_turns_narrative() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", TTA_COORD, "demo", "--no-live", "--pause", "0"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "the TTA scene: each turn's narrative" in out
    for story in NARRATIVES.values():
        assert story in out
    assert "tta progress (event)" in out
    assert "workflow_completed" in out
    assert "TTA scene skipped" not in out
    assert "FAIL" not in out


@pytest.mark.slow
def test_the_program_says_in_one_line_that_the_scene_needs_tta_agents() -> None:
    env = _env()
    env["COLUMNS"] = "60"  # narrower than the line: it must still be one line
    proc = subprocess.run(
        [sys.executable, "-c", HIDE + TTA_COORD, "demo", "--no-live", "--pause", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert TTA_AGENTS_MISSING in lines
    assert not any(
        "tta progress" in line or "TTA" in line for line in lines if line != TTA_AGENTS_MISSING
    )
    assert "OK: every message ended where it should" in proc.stdout


async def test_progress_events_that_never_arrive_stop_the_demo_with_the_reason(
    coordination_redis: RedisClient, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watcher only counts events whose "event" field is the pipeline's: with another
    # name, none of them counts, and the scene gives up after the step timeout.
    real = load_tta_agents()
    monkeypatch.setattr(
        scenario_module,
        "load_tta_agents",
        lambda: dataclasses.replace(real, progress_event="not-the-pipeline"),
    )
    scenario = DemoScenario(
        coordination_redis, key_prefix, DemoSettings(pause_s=0, step_timeout_s=1.0)
    )
    result = await scenario.run()
    assert not result.ok
    assert result.error is not None
    assert "during 'tta'" in result.error
    assert "progress events did not arrive" in result.error
    assert [c.name for c in result.checks if c.name.startswith("TTA")] == [
        "TTA scene ran to its end"
    ]
    assert scenario.tta is not None
    assert all(a.worker.state.value == "stopped" for a in scenario.tta.agents)
    assert result.answered == 0  # the later acts did not run
