"""The contracts of TTA's agents: the orchestration request/response and each agent's payloads.

Field names are those of the original ``agent_orchestration`` models and proxies, so that a
payload written by TTA today validates here unchanged:

========  =====================================  ==============================================
agent     request payload                        response payload
========  =====================================  ==============================================
IPA       ``{text}``                             ``{normalized_text, routing: {intent, ...}, ...}``
WBA       ``{world_id, updates}``                ``{world_id, world_state, cached, ...}``
NGA       ``{prompt, context}``                  ``{story, raw, context_used, ...}``
========  =====================================  ==============================================

Responses accept extra fields (``...`` above: TTA's adapters add their own, such as
``source``); requests do not, so a typo in a field name is an error instead of a silently
empty payload. Each model converts to and from a message payload with
``model_dump(mode="json")`` and ``model_validate(payload)``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tta_agents.types import AgentType

__all__ = [
    "MOCK_FALLBACK_SOURCE",
    "IPARequest",
    "IPAResponse",
    "IPARouting",
    "NGARequest",
    "NGAResponse",
    "OrchestrationRequest",
    "OrchestrationResponse",
    "WBARequest",
    "WBAResponse",
]

MOCK_FALLBACK_SOURCE = "mock_fallback"
"""The ``source`` of a response produced by a fallback instead of the real agent."""


class OrchestrationRequest(BaseModel):
    """A player's turn as TTA's orchestration service receives it.

    Attributes:
        session_id: the player's session.
        entrypoint: the first agent of the pipeline (the input processor by default).
        input: the turn's input (``{"text": ...}`` for the input processor).
    """

    session_id: str = Field(min_length=1)
    entrypoint: AgentType = AgentType.IPA
    input: dict[str, Any] = Field(default_factory=dict[str, Any])


class OrchestrationResponse(BaseModel):
    """What the orchestration returns for one turn.

    Attributes:
        response_text: the narrative shown to the player.
        updated_context: the session context after the turn.
        workflow_metadata: how the turn ran (steps, timings, errors).
    """

    response_text: str
    updated_context: dict[str, Any] = Field(default_factory=dict[str, Any])
    workflow_metadata: dict[str, Any] = Field(default_factory=dict[str, Any])


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")

    source: str | None = None
    """Who produced it: the real agent, or :data:`MOCK_FALLBACK_SOURCE` for a fallback."""

    @property
    def is_fallback(self) -> bool:
        """Whether a fallback produced this response instead of the real agent."""
        return self.source == MOCK_FALLBACK_SOURCE


class IPARequest(_Request):
    """Input processor request: the player's raw text."""

    text: str


class IPARouting(BaseModel):
    """Where the input processor routes the input (its ``intent``, plus any extra keys)."""

    model_config = ConfigDict(extra="allow")

    intent: str | None = None


class IPAResponse(_Response):
    """Input processor response: the normalised text and its routing."""

    normalized_text: str
    routing: IPARouting = Field(default_factory=IPARouting)


class WBARequest(_Request):
    """World builder request: a world and the updates to apply to it."""

    world_id: str
    updates: dict[str, Any] = Field(default_factory=dict[str, Any])


class WBAResponse(_Response):
    """World builder response: the world's state after the updates."""

    world_id: str
    world_state: dict[str, Any] = Field(default_factory=dict[str, Any])
    cached: bool = False


class NGARequest(_Request):
    """Narrative generator request: a prompt and the context to write from."""

    prompt: str
    context: dict[str, Any] = Field(default_factory=dict[str, Any])


class NGAResponse(_Response):
    """Narrative generator response: the story, and the raw model output."""

    story: str
    raw: Any = None
    context_used: bool = False
    """Whether the generator was given a non-empty context."""
