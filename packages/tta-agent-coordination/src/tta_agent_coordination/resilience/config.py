"""Circuit-breaker configuration: a frozen pydantic model and an environment loader.

Defaults follow TTA's original breaker: 5 consecutive failures open it, it half-opens
after 60 s, admits 3 concurrent probes there and closes after 2 successful probes. The
open time can grow on repeated openings (``timeout_multiplier``, ``max_timeout_seconds``);
the breaker around Redis uses short, growing open times (see
:func:`~tta_agent_coordination.resilience.redis_breaker_config`).
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tta_agent_coordination.errors import CircuitBreakerOpenError, ConfigurationError

__all__ = [
    "DEFAULT_IGNORE",
    "DEFAULT_RECORD",
    "CircuitBreakerConfig",
    "CircuitBreakerSettings",
]

DEFAULT_RECORD: tuple[type[BaseException], ...] = (Exception,)
"""Exceptions counted as failures by default: every ``Exception``."""

DEFAULT_IGNORE: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    KeyError,
    CircuitBreakerOpenError,
)
"""Exceptions never counted by default: caller errors and an inner breaker's refusal."""


def _describe(exc: ValidationError) -> str:
    parts: list[str] = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "invalid circuit breaker configuration: " + "; ".join(parts)


class _BreakerLimits(BaseModel):
    """The numeric settings of a breaker, shared by the config and its env loader."""

    failure_threshold: int = 5
    timeout_seconds: float = 60.0
    timeout_multiplier: float = 2.0
    max_timeout_seconds: float | None = None
    half_open_max_calls: int = 3
    success_threshold: int = 2
    window_size: int | None = None
    failure_rate_threshold: float = 0.5
    minimum_calls: int | None = None
    slow_call_threshold_s: float | None = None
    call_timeout_s: float | None = None
    health_check_timeout_s: float = 1.0


class CircuitBreakerConfig(_BreakerLimits):
    """How a :class:`~tta_agent_coordination.resilience.CircuitBreaker` trips and recovers.

    Invalid values raise :class:`~tta_agent_coordination.errors.ConfigurationError`.

    Attributes:
        failure_threshold: consecutive failures (while closed) that open the breaker.
        timeout_seconds: how long the breaker stays open before it half-opens, the
            first time it opens.
        timeout_multiplier: each further opening in a row stays open this many times
            longer than the one before (>= 1)...
        max_timeout_seconds: ...up to this (None: ``timeout_seconds``, so the open time
            never grows). Openings are "in a row" until the breaker has stayed closed
            for ``max_timeout_seconds``.
        half_open_max_calls: probes admitted at the same time while half-open.
        success_threshold: successful probes that close a half-open breaker
            (at most ``half_open_max_calls``).
        window_size: when set, the breaker also opens when the failure rate over the
            last ``window_size`` calls reaches ``failure_rate_threshold``...
        failure_rate_threshold: ...a rate in (0, 1]...
        minimum_calls: ...once at least this many calls are in the window (None:
            ``window_size``, i.e. a full window).
        slow_call_threshold_s: a call slower than this counts as a failure (its result
            is still returned).
        call_timeout_s: a call still running after this is cancelled, raises
            ``TimeoutError`` and counts as a failure.
        health_check_timeout_s: bound on one run of the breaker's health check (a
            check still running after this has failed); used only by a breaker given a
            ``health_check``.
        record: exception types that count as failures. An exception that matches
            neither ``record`` nor ``ignore`` means the dependency answered: it counts
            as a success.
        ignore: exception types never counted (checked before ``record``).
            ``asyncio.CancelledError`` is never a failure, whatever the lists say.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    record: tuple[type[BaseException], ...] = DEFAULT_RECORD
    ignore: tuple[type[BaseException], ...] = DEFAULT_IGNORE

    if not TYPE_CHECKING:  # keep pydantic's typed signature for type checkers

        def __init__(self, **data: Any) -> None:
            try:
                super().__init__(**data)
            except ValidationError as exc:
                raise ConfigurationError(_describe(exc)) from None

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems: list[str] = []
        if self.failure_threshold < 1:
            problems.append(f"failure_threshold must be >= 1, got {self.failure_threshold}")
        if not self.timeout_seconds > 0:
            problems.append(f"timeout_seconds must be > 0, got {self.timeout_seconds}")
        elif self.max_timeout_seconds is not None and not (
            math.isfinite(self.max_timeout_seconds)
            and self.max_timeout_seconds >= self.timeout_seconds
        ):
            problems.append(
                f"max_timeout_seconds must be finite and >= timeout_seconds "
                f"({self.timeout_seconds}), or None; got {self.max_timeout_seconds}"
            )
        if not (math.isfinite(self.timeout_multiplier) and self.timeout_multiplier >= 1):
            problems.append(
                f"timeout_multiplier must be finite and >= 1, got {self.timeout_multiplier}"
            )
        if self.half_open_max_calls < 1:
            problems.append(f"half_open_max_calls must be >= 1, got {self.half_open_max_calls}")
        if self.success_threshold < 1:
            problems.append(f"success_threshold must be >= 1, got {self.success_threshold}")
        elif self.success_threshold > self.half_open_max_calls:
            problems.append(
                f"success_threshold ({self.success_threshold}) must be <= "
                f"half_open_max_calls ({self.half_open_max_calls})"
            )
        if not 0 < self.failure_rate_threshold <= 1:
            problems.append(
                f"failure_rate_threshold must be in (0, 1], got {self.failure_rate_threshold}"
            )
        if self.window_size is not None:
            if self.window_size < 1:
                problems.append(f"window_size must be >= 1, got {self.window_size}")
            elif self.minimum_calls is not None and not (
                1 <= self.minimum_calls <= self.window_size
            ):
                problems.append(
                    f"minimum_calls must be in [1, window_size={self.window_size}], "
                    f"got {self.minimum_calls}"
                )
        elif self.minimum_calls is not None and self.minimum_calls < 1:
            problems.append(f"minimum_calls must be >= 1, got {self.minimum_calls}")
        for field in ("slow_call_threshold_s", "call_timeout_s"):
            value: float | None = getattr(self, field)
            if value is not None and not value > 0:
                problems.append(f"{field} must be > 0 or None, got {value}")
        if not self.health_check_timeout_s > 0:
            problems.append(
                f"health_check_timeout_s must be > 0, got {self.health_check_timeout_s}"
            )
        if asyncio.CancelledError in self.record:
            problems.append("record must not contain asyncio.CancelledError")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def window_minimum_calls(self) -> int:
        """Calls needed in the window before its failure rate can trip the breaker."""
        if self.minimum_calls is not None:
            return self.minimum_calls
        return self.window_size or 1

    @property
    def longest_open_s(self) -> float:
        """The longest time the breaker stays open (``max_timeout_seconds`` or the base)."""
        if self.max_timeout_seconds is None:
            return self.timeout_seconds
        return self.max_timeout_seconds

    def open_seconds(self, streak: int) -> float:
        """How long the ``streak``-th opening in a row stays open (the first is 1).

        ``timeout_seconds * timeout_multiplier ** (streak - 1)``, at most
        :attr:`longest_open_s`.
        """
        try:
            grown = self.timeout_seconds * self.timeout_multiplier ** max(streak - 1, 0)
        except OverflowError:
            return self.longest_open_s
        return min(grown, self.longest_open_s)

    @property
    def probe_lease_s(self) -> float:
        """How long a half-open probe may hold its slot before it is presumed abandoned."""
        return max(self.longest_open_s, self.call_timeout_s or 0.0, self.health_check_timeout_s)

    def counts_as_failure(self, exc: BaseException) -> bool | None:
        """Classify an exception: True failure, False success, None not counted."""
        if isinstance(exc, asyncio.CancelledError) or not isinstance(exc, Exception):
            return None
        if isinstance(exc, self.ignore):
            return None
        return isinstance(exc, self.record)


# pydantic merges model_config across bases; pyright sees two incompatible declarations.
class CircuitBreakerSettings(BaseSettings, _BreakerLimits):  # pyright: ignore[reportIncompatibleVariableOverride]
    """Breaker settings from the environment (prefix ``TTA_COORD_BREAKER_``).

    For example ``TTA_COORD_BREAKER_FAILURE_THRESHOLD=10`` and
    ``TTA_COORD_BREAKER_WINDOW_SIZE=none``. Exception lists cannot come from the
    environment: pass them to :meth:`to_config`.
    """

    model_config = SettingsConfigDict(
        env_prefix="TTA_COORD_BREAKER_", extra="ignore", env_parse_none_str="none"
    )

    def to_config(
        self,
        *,
        record: tuple[type[BaseException], ...] = DEFAULT_RECORD,
        ignore: tuple[type[BaseException], ...] = DEFAULT_IGNORE,
    ) -> CircuitBreakerConfig:
        """The validated :class:`CircuitBreakerConfig` (raises ``ConfigurationError``)."""
        return CircuitBreakerConfig(**self.model_dump(), record=record, ignore=ignore)
