"""Validated settings of a ``RedisMessageCoordinator`` (TTA's defaults)."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tta_agent_coordination.errors import ConfigurationError

__all__ = ["CoordinatorConfig"]


class CoordinatorConfig(BaseModel):
    """Limits, retry backoff and housekeeping of a coordinator.

    Defaults are TTA's: 10 000 unsettled messages per queue, 3 retries (4 deliveries),
    backoff 1 s x 2 capped at 30 s.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue_size: int = Field(10_000, gt=0, description="unsettled messages per queue")
    retry_attempts: int = Field(3, ge=0, description="retries after the first delivery")
    backoff_base: float = Field(1.0, ge=0, description="seconds before the first retry")
    backoff_factor: float = Field(2.0, ge=1, description="growth of the delay per retry")
    backoff_max: float = Field(30.0, ge=0, description="cap on a retry delay, seconds")
    backoff_jitter: float = Field(
        0.0, ge=0, le=1, description="up to this fraction is added to each delay at random"
    )
    dedupe_window_s: float = Field(
        60.0, ge=0, description="how long a settled message_id is still refused as duplicate"
    )
    dlq_max_len: int = Field(10_000, gt=0, description="dead letters kept per queue")
    max_payload_bytes: int = Field(1_048_576, gt=0, description="largest serialised envelope")
    orphan_lease_s: float = Field(
        5.0, gt=0, description="a reservation with no lease is treated as expired after this"
    )
    maintenance_batch: int = Field(
        100, gt=0, le=10_000, description="expired leases / due retries handled per call"
    )
    wait_replicas: int = Field(
        0,
        ge=0,
        description="replicas that must confirm each send (WAIT) before it counts as enqueued",
    )
    wait_timeout_s: float = Field(
        0.5, gt=0, description="longest wait for those replicas; then the send is UNKNOWN"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.backoff_max < self.backoff_base:
            raise ValueError(
                f"backoff_max ({self.backoff_max}) must be >= backoff_base ({self.backoff_base})"
            )
        return self

    @classmethod
    def build(cls, **values: Any) -> CoordinatorConfig:
        """Validate ``values`` into a config, raising ``ConfigurationError`` on bad input."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid coordinator configuration: {exc}") from None

    def updated(self, **changes: Any) -> CoordinatorConfig:
        """A validated copy with ``changes`` applied (``None`` values are ignored)."""
        merged = self.model_dump()
        merged.update({k: v for k, v in changes.items() if v is not None})
        return self.build(**merged)
