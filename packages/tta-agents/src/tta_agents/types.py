"""TTA's agent types on the core's generic :class:`~tta_agent_coordination.AgentId`.

The core knows no agent type: ``AgentId.type`` is any safe string. TTA's three story agents
(and the OpenHands agent) are an enum here, as in the original ``agent_orchestration``
package, with the original short member names (``AgentType.IPA``) and long aliases
(``AgentType.INPUT_PROCESSOR``). An enum member is accepted wherever the core takes an agent
type and is stored as its value:
``AgentId(AgentType.IPA, "x") == AgentId("input_processor", "x")``.
"""

from __future__ import annotations

from enum import StrEnum

from tta_agent_coordination import AgentId

__all__ = [
    "AgentType",
    "create_agent_id",
    "ipa",
    "legacy_agent_key",
    "nga",
    "openhands",
    "wba",
]


class AgentType(StrEnum):
    """TTA's agent types; each value is the ``AgentId.type`` its agents use.

    ``IPA``/``WBA``/``NGA`` are the original member names; ``INPUT_PROCESSOR``,
    ``WORLD_BUILDER`` and ``NARRATIVE_GENERATOR`` are aliases of the same members.
    ``AgentType("unknown")`` raises ``ValueError``.
    """

    IPA = "input_processor"
    WBA = "world_builder"
    NGA = "narrative_generator"
    OPENHANDS = "openhands"
    # Aliases (same value, so the same member): the long names some TTA modules use.
    INPUT_PROCESSOR = "input_processor"
    WORLD_BUILDER = "world_builder"
    NARRATIVE_GENERATOR = "narrative_generator"

    @property
    def short_name(self) -> str:
        """The member's short name in lower case (``"ipa"``), as TTA's logs and metrics keyed it."""
        return self.name.lower()


def create_agent_id(agent_type: AgentType | str, instance: str | None = None) -> AgentId:
    """The :class:`AgentId` of one TTA agent, or of its whole type.

    Args:
        agent_type: an :class:`AgentType` member or its value (``"world_builder"``).
        instance: the agent instance; None gives the **type-wide** id
            (``AgentId("input_processor")``), which as a recipient means "any live
            instance of that type" (its workers compete for the messages).

    Raises:
        ValueError: ``agent_type`` is not a TTA agent type, or ``instance`` is not a safe
            name (letters, digits, ``_ . -``; see ``AgentId``).
    """
    return AgentId(AgentType(agent_type).value, instance)


def ipa(instance: str | None = None) -> AgentId:
    """The id of an input-processor agent (type-wide when ``instance`` is None)."""
    return create_agent_id(AgentType.IPA, instance)


def wba(instance: str | None = None) -> AgentId:
    """The id of a world-builder agent (type-wide when ``instance`` is None)."""
    return create_agent_id(AgentType.WBA, instance)


def nga(instance: str | None = None) -> AgentId:
    """The id of a narrative-generator agent (type-wide when ``instance`` is None)."""
    return create_agent_id(AgentType.NGA, instance)


def openhands(instance: str | None = None) -> AgentId:
    """The id of an OpenHands agent (type-wide when ``instance`` is None)."""
    return create_agent_id(AgentType.OPENHANDS, instance)


def legacy_agent_key(agent_id: AgentId) -> str:
    """The original code's ``"ipa:x"`` key of an agent (recovery counts, queue gauges).

    The original built it from the enum member's *name* (``type.name.lower()``) and the
    instance. A type-wide id (a queue the original did not have) is ``"ipa:*"``; a type
    that is not TTA's keeps its own name (``"calc:1"``).
    """
    try:
        short = AgentType(agent_id.type).short_name
    except ValueError:
        short = agent_id.type
    return f"{short}:{agent_id.instance if agent_id.instance is not None else '*'}"
