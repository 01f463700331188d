"""``tta_agents.types`` and ``tta_agents.contracts``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import tta_agents
from tta_agent_coordination import AgentId
from tta_agents.contracts import (
    IPARequest,
    IPAResponse,
    NGAResponse,
    OrchestrationRequest,
    OrchestrationResponse,
    WBARequest,
    WBAResponse,
)
from tta_agents.types import (
    AgentType,
    create_agent_id,
    ipa,
    legacy_agent_key,
    nga,
    openhands,
    wba,
)


def test_aliases_are_the_same_members():
    assert AgentType.INPUT_PROCESSOR is AgentType.IPA
    assert AgentType.WORLD_BUILDER is AgentType.WBA
    assert AgentType.NARRATIVE_GENERATOR is AgentType.NGA
    assert len(list(AgentType)) == 4
    assert AgentType.IPA.short_name == "ipa"


def test_create_agent_id_instance_and_type_wide():
    assert create_agent_id(AgentType.IPA, "x") == AgentId("input_processor", "x")
    type_wide = create_agent_id(AgentType.IPA)
    assert type_wide == AgentId("input_processor")
    assert type_wide.is_type_wide
    assert create_agent_id("world_builder", "w") == wba("w")
    assert (ipa(), wba(), nga(), openhands()) == tuple(AgentId(t.value) for t in AgentType)
    assert str(nga("n1")) == "narrative_generator:n1"


def test_create_agent_id_refuses_unknown_types_and_unsafe_instances():
    with pytest.raises(ValueError, match="calculator"):
        create_agent_id("calculator")
    with pytest.raises(ValueError, match="invalid agent instance"):
        create_agent_id(AgentType.IPA, "a:b")


@given(
    st.sampled_from(list(AgentType)), st.from_regex(r"[a-z0-9][a-z0-9_.\-]{0,20}", fullmatch=True)
)
def test_legacy_keys_use_the_member_name(agent_type, instance):
    key = legacy_agent_key(create_agent_id(agent_type, instance))
    assert key == f"{agent_type.name.lower()}:{instance}"


def test_legacy_key_of_a_type_wide_id_and_a_foreign_type():
    assert legacy_agent_key(ipa()) == "ipa:*"
    assert legacy_agent_key(AgentId("calc", "1")) == "calc:1"


def test_orchestration_models_keep_the_original_fields():
    request = OrchestrationRequest(session_id="s1", input={"text": "hi"})
    assert request.entrypoint is AgentType.IPA
    assert OrchestrationRequest.model_validate(request.model_dump(mode="json")) == request
    response = OrchestrationResponse(response_text="ok")
    assert response.updated_context == {}
    assert response.workflow_metadata == {}
    with pytest.raises(ValidationError):
        OrchestrationRequest(session_id="")


def test_requests_refuse_unknown_fields_responses_keep_them():
    with pytest.raises(ValidationError, match="txt"):
        IPARequest.model_validate({"txt": "typo"})
    answer = IPAResponse.model_validate(
        {"normalized_text": "go", "routing": {"intent": "move", "npc": None}, "raw_intent": {}}
    )
    assert answer.routing.intent == "move"
    assert answer.model_dump()["raw_intent"] == {}
    assert WBARequest(world_id="w").updates == {}
    world = WBAResponse.model_validate({"world_id": "w", "source": "mock_fallback"})
    assert world.is_fallback
    assert not world.cached
    story = NGAResponse(story="s")
    assert not story.is_fallback
    assert story.context_used is False


def test_the_package_exports_its_names():
    for name in tta_agents.__all__:
        assert hasattr(tta_agents, name), name
