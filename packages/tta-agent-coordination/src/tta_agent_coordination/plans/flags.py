"""``RuntimeFlags``: the plan runtime's feature flags and budgets (pydantic-settings).

Every field reads ``TTA_COORD_RUNTIME_<FIELD>`` from the environment; the seed's flag
names work too, as aliases: ``ENHANCED_RUNTIME``, ``CONVERSATION_MODE``,
``PLANNING_THRESHOLD`` and ``REFLECTION_ENABLED``. The A/B split (``enhanced_fraction``)
is stable per session: a session hashes to the same bucket in every process and
every release, so one user never flips between the two paths.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["PlannerFallback", "PlanningThreshold", "RuntimeFlags", "session_bucket"]

PlanningThreshold = Literal["never", "multi_step", "always"]
"""When to plan: ``never`` (every task single-shot), ``multi_step`` (when the planner's
``assess`` says so; the seed's default), ``always``."""

PlannerFallback = Literal["single_shot", "fail"]
"""What a run does when its planner raises, hangs or returns an invalid plan: run the
task as one request (``single_shot``) or end as ``failed``."""


def _alias(field: str, seed_name: str | None = None) -> AliasChoices:
    names = [f"TTA_COORD_RUNTIME_{field.upper()}", field]
    if seed_name is not None:
        names.insert(1, seed_name)
    return AliasChoices(*names)


def session_bucket(session_id: str) -> float:
    """A stable number in ``[0, 1)`` for ``session_id`` (SHA-256, not Python's ``hash``).

    Python's ``hash`` of a string changes with every process (hash randomisation), so it
    cannot split sessions stably; the first 8 bytes of a SHA-256 can.
    """
    digest = hashlib.sha256(session_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class RuntimeFlags(BaseSettings):
    """Flags and budgets of a :class:`~tta_agent_coordination.plans.PlanRuntime`.

    Attributes:
        enhanced: the enhanced runtime (planning, reflection) is on (``ENHANCED_RUNTIME``);
            off, every task takes the legacy single-shot path.
        conversation: a narrator tells progress as messages (``CONVERSATION_MODE``).
        reflection: a reflector judges every step attempt (``REFLECTION_ENABLED``); off,
            a failed attempt is retried within its budget and a success continues.
        planning_threshold: when to plan (``PLANNING_THRESHOLD``).
        enhanced_fraction: the share of sessions on the enhanced path (A/B rollout).
        max_steps: step attempts a run may start, retries included.
        max_retries_per_step: further attempts of one step after its first.
        max_replans: new plans after the first.
        run_timeout_s: a run still live after this ends as ``budget_exhausted``.
        planner_timeout_s: a planner call (``assess`` or ``plan``) that takes longer
            falls back.
        reflector_timeout_s: a reflector call that takes longer falls back to the
            no-reflection rule.
        planner_fallback: what a failed planner leads to.
        retention_s: how long a finished run's state and events stay in Redis.
        events_max_len: the most events a run's stream keeps (approximately).
    """

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    enhanced: bool = Field(default=False, validation_alias=_alias("enhanced", "ENHANCED_RUNTIME"))
    conversation: bool = Field(
        default=False, validation_alias=_alias("conversation", "CONVERSATION_MODE")
    )
    reflection: bool = Field(
        default=False, validation_alias=_alias("reflection", "REFLECTION_ENABLED")
    )
    planning_threshold: PlanningThreshold = Field(
        default="multi_step", validation_alias=_alias("planning_threshold", "PLANNING_THRESHOLD")
    )
    enhanced_fraction: float = Field(
        default=1.0, ge=0.0, le=1.0, validation_alias=_alias("enhanced_fraction")
    )
    max_steps: int = Field(default=20, ge=1, le=10_000, validation_alias=_alias("max_steps"))
    max_retries_per_step: int = Field(
        default=2, ge=0, le=100, validation_alias=_alias("max_retries_per_step")
    )
    max_replans: int = Field(default=3, ge=0, le=100, validation_alias=_alias("max_replans"))
    run_timeout_s: float = Field(default=600.0, gt=0, validation_alias=_alias("run_timeout_s"))
    planner_timeout_s: float = Field(
        default=30.0, gt=0, validation_alias=_alias("planner_timeout_s")
    )
    reflector_timeout_s: float = Field(
        default=30.0, gt=0, validation_alias=_alias("reflector_timeout_s")
    )
    planner_fallback: PlannerFallback = Field(
        default="single_shot", validation_alias=_alias("planner_fallback")
    )
    retention_s: float = Field(default=86_400.0, gt=0, validation_alias=_alias("retention_s"))
    events_max_len: int = Field(default=1_000, ge=10, validation_alias=_alias("events_max_len"))

    def enhanced_for(self, session_id: str) -> bool:
        """Whether ``session_id`` takes the enhanced path (the flag, then the A/B split)."""
        return self.enhanced and session_bucket(session_id) < self.enhanced_fraction
