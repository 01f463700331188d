"""Small rule-based adapters for the demo's TTA scene: deterministic text, no LLM.

They have the shape of TTA's own adapters (``IPAAdapter``, ``WBAAdapter``, ``NGAAdapter``),
which is what ``tta_agents.workers`` builds its workers around: an async method returning
the agent's contract payload, and a ``fallback_to_mock`` switch. Each answer carries
``source="rules"`` (so a reply produced by the workers' fallback is told apart) and
``answered_by``, the worker it belongs to (so the demo can show which world-builder
instance took a request from the shared type queue).

This module imports nothing from ``tta_agents``: the adapters satisfy its protocols by
their shape alone.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

__all__ = [
    "RULES_SOURCE",
    "RuleInputProcessor",
    "RuleNarrator",
    "RuleWorldBuilder",
    "WorldStore",
]

RULES_SOURCE = "rules"
"""The ``source`` of every answer of these adapters."""

_INTENTS: Mapping[str, str] = {
    "look": "explore",
    "examine": "explore",
    "search": "explore",
    "go": "move",
    "walk": "move",
    "run": "move",
    "open": "interact",
    "push": "interact",
    "pull": "interact",
    "take": "take",
    "grab": "take",
    "talk": "talk",
    "ask": "talk",
}
_FILLER = frozenset({"a", "an", "the", "at", "to", "around", "up", "with"})
_WORDS = re.compile(r"[a-z0-9']+")


class RuleInputProcessor:
    """An input processor: normalises the text and routes it by its first verb.

    Args:
        name: the worker this adapter belongs to (``answered_by`` of its answers).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.fallback_to_mock = False

    async def process_input(self, text: str) -> Mapping[str, Any]:
        """The IPA contract's answer for ``text``: ``normalized_text`` and ``routing``.

        ``routing.intent`` comes from the first word (``explore``, ``move``, ``interact``,
        ``take``, ``talk``; ``unknown`` otherwise) and ``routing.target`` is the rest
        without filler words (articles, ``around``...).
        """
        words = _WORDS.findall(text.lower())
        verb = words[0] if words else ""
        intent = _INTENTS.get(verb, "unknown")
        target = " ".join(w for w in words[1:] if w not in _FILLER)
        return {
            "normalized_text": " ".join(words),
            "routing": {
                "intent": intent,
                "target": target,
                "confidence": 0.9 if intent != "unknown" else 0.3,
            },
            "source": RULES_SOURCE,
            "answered_by": self.name,
        }


class WorldStore:
    """The world state the world builders share (in this process, as a database would be).

    Every world starts as the same small keep; each request to the world builder counts
    one visit to it.
    """

    def __init__(self) -> None:
        self._worlds: dict[str, dict[str, Any]] = {}

    def update(self, world_id: str, updates: Mapping[str, Any] | None) -> dict[str, Any]:
        """Apply ``updates`` to ``world_id`` (creating it first) and return a copy of it."""
        world = self._worlds.setdefault(world_id, _new_world(world_id))
        world.update(updates or {})
        world["visits"] += 1
        return copy.deepcopy(world)


def _new_world(world_id: str) -> dict[str, Any]:
    return {
        "id": world_id,
        "location": "courtyard",
        "regions": ["courtyard", "gatehouse", "north road"],
        "entities": ["a rusty gate", "a well", "a sleeping guard"],
        "exits": {"north": "north road", "gate": "gatehouse"},
        "visits": 0,
    }


class RuleWorldBuilder:
    """A world builder over a :class:`WorldStore` shared with the other instances.

    Args:
        name: the worker this adapter belongs to (``answered_by`` of its answers).
        store: the worlds.
    """

    def __init__(self, name: str, store: WorldStore) -> None:
        self.name = name
        self.fallback_to_mock = False
        self._store = store

    async def process_world_request(
        self, world_id: str, updates: dict[str, Any] | None = None
    ) -> Mapping[str, Any]:
        """The WBA contract's answer: ``world_id``'s state after ``updates``."""
        state = self._store.update(world_id, updates)
        return {
            "world_id": world_id,
            "world_state": state,
            "cached": state["visits"] > 1,
            "source": RULES_SOURCE,
            "answered_by": self.name,
        }


class RuleNarrator:
    """A narrative generator: one sentence from the routed input and the world's state.

    Args:
        name: the worker this adapter belongs to (``answered_by`` of its answers).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.fallback_to_mock = False

    async def generate_narrative(
        self, prompt: str, context: dict[str, Any] | None = None
    ) -> Mapping[str, Any]:
        """The NGA contract's answer: a ``story`` written from the pipeline's context.

        It reads what the earlier steps put there: ``ipa_result.routing`` (intent and
        target), ``wba_result.world_state`` (location, entities, exits) and ``player``.
        """
        ctx = context or {}
        routing: Mapping[str, Any] = _mapping(_mapping(ctx.get("ipa_result")).get("routing"))
        world: Mapping[str, Any] = _mapping(_mapping(ctx.get("wba_result")).get("world_state"))
        story = _story(
            str(ctx.get("player") or "The traveller").capitalize(),
            str(routing.get("intent") or "unknown"),
            str(routing.get("target") or ""),
            world,
        )
        return {
            "story": story,
            "raw": {"prompt": prompt, "intent": routing.get("intent")},
            "context_used": bool(ctx),
            "source": RULES_SOURCE,
            "answered_by": self.name,
        }


def _mapping(value: object) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        items = cast("Mapping[object, Any]", value).items()
        return {str(k): v for k, v in items}
    return {}


def _strings(value: object) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in cast("Sequence[object]", value)]
    return []


def _story(player: str, intent: str, target: str, world: Mapping[str, Any]) -> str:
    location = str(world.get("location") or "somewhere")
    entities = _strings(world.get("entities"))
    exits: Mapping[str, Any] = _mapping(world.get("exits"))
    if intent == "explore":
        seen = ", ".join(entities) or "nothing at all"
        return f"{player} looks around the {location} and sees {seen}."
    if intent == "move":
        where = str(exits.get(target) or target or "on")
        return f"{player} leaves the {location} and heads for the {where}."
    if intent == "interact":
        behind = str(exits.get(target.split()[-1] if target else "") or "darkness")
        return f"{player} opens the {target or 'way'}; beyond it lies the {behind}."
    if intent == "take":
        return f"{player} takes the {target or 'nothing'} from the {location}."
    if intent == "talk":
        return f"{player} speaks to the {target or 'silence'}; no one in the {location} answers."
    return f"{player} hesitates in the {location}; nothing happens."
