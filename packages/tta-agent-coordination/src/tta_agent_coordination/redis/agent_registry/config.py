"""Validated settings of a ``RedisAgentRegistry`` (TTA's defaults).

The same style as :class:`~tta_agent_coordination.redis.config.CoordinatorConfig`: a
frozen pydantic model, built with :meth:`RegistryConfig.build`, which turns every bad
value into one :class:`~tta_agent_coordination.errors.ConfigurationError`. See
``docs/registry.md``.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tta_agent_coordination.errors import ConfigurationError

__all__ = ["RegistryConfig"]


class RegistryConfig(BaseModel):
    """Liveness, state retention, agent hooks, events and housekeeping of a registry.

    Defaults are TTA's: a 30 s TTL renewed every 10 s, exported state kept for 24 h.
    Settings left at None are derived from others (see each field); the ``resolved_*``
    properties give the values in use.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    heartbeat_ttl_s: float = Field(
        default=30.0, gt=0, description="how long a registration stays alive without a heartbeat"
    )
    heartbeat_interval_s: float | None = Field(
        default=None,
        gt=0,
        description="time between heartbeats, below the TTL; None: a third of it",
    )
    state_retention_s: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="how long exported state, and an expired registration's record, are "
        "kept; at least the TTL",
    )
    state_save_interval_s: float | None = Field(
        default=None,
        ge=0,
        description="how often heartbeats save export_state(); 0 only on deregistration; "
        "None: every TTL",
    )
    hook_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="how long a beat waits for an async agent hook; None: half the interval",
    )
    events_max_len: int = Field(
        default=10_000,
        ge=0,
        description="approximate bound of the events stream; 0 turns events off",
    )
    enable_events: bool = Field(default=True, description="False turns the events stream off")
    max_state_bytes: int = Field(
        default=1_000_000, gt=0, description="the largest exported state kept, serialised"
    )
    auto_reregister: bool = Field(
        default=True,
        description="register again, under a new token, a registration that expired "
        "because the process stalled (unless another owner took the id)",
    )
    reap_batch: int = Field(
        default=500, gt=0, description="expired registrations handled by one reaper script"
    )
    store_seen_interval_s: float = Field(
        default=60.0,
        ge=0,
        description="how often heartbeats tell the store which held agents are alive; 0 never",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        interval = self.resolved_heartbeat_interval_s
        if not interval < self.heartbeat_ttl_s:
            raise ValueError(
                f"heartbeat_interval_s must be below heartbeat_ttl_s ({self.heartbeat_ttl_s}), "
                f"got {interval}"
            )
        if self.state_retention_s < self.heartbeat_ttl_s:
            raise ValueError(
                f"state_retention_s must be at least heartbeat_ttl_s ({self.heartbeat_ttl_s}), "
                f"got {self.state_retention_s}"
            )
        return self

    @classmethod
    def build(cls, **values: Any) -> RegistryConfig:
        """Validate ``values`` into a config, raising ``ConfigurationError`` on bad input.

        The message names every bad setting, what it must be and the value given.
        """
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc)) from None

    def updated(self, **changes: Any) -> RegistryConfig:
        """A validated copy with ``changes`` applied (``None`` values are ignored)."""
        merged = self.model_dump()
        merged.update({k: v for k, v in changes.items() if v is not None})
        return self.build(**merged)

    @property
    def resolved_heartbeat_interval_s(self) -> float:
        """Time between heartbeats: ``heartbeat_interval_s``, or a third of the TTL."""
        if self.heartbeat_interval_s is None:
            return self.heartbeat_ttl_s / 3
        return self.heartbeat_interval_s

    @property
    def resolved_state_save_interval_s(self) -> float:
        """How often heartbeats save state: ``state_save_interval_s``, or the TTL."""
        if self.state_save_interval_s is None:
            return self.heartbeat_ttl_s
        return self.state_save_interval_s

    @property
    def resolved_hook_timeout_s(self) -> float:
        """How long a beat waits for a hook: ``hook_timeout_s``, or half the interval."""
        if self.hook_timeout_s is None:
            return self.resolved_heartbeat_interval_s / 2
        return self.hook_timeout_s

    @property
    def events_limit(self) -> int:
        """The events stream's MAXLEN as the scripts use it: 0 when events are off."""
        return self.events_max_len if self.enable_events else 0

    @property
    def ttl_ms(self) -> int:
        """``heartbeat_ttl_s`` in whole milliseconds (at least 1)."""
        return max(1, round(self.heartbeat_ttl_s * 1000))

    @property
    def retention_ms(self) -> int:
        """``state_retention_s`` in whole milliseconds (at least 1)."""
        return max(1, round(self.state_retention_s * 1000))


def _describe(exc: ValidationError) -> str:
    problems: list[str] = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if not field:  # a rule between settings: the message names them itself
            problems.append(message)
        elif error["type"] in {"extra_forbidden", "missing"}:
            problems.append(f"{field}: {message.lower()}")
        else:
            problems.append(f"{field}: {message.lower()}, got {error['input']!r}")
    return "invalid registry configuration: " + "; ".join(problems)
