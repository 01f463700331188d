"""CircuitBreakerConfig validation, CircuitBreakerSettings, CircuitBreakerRegistry."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from tta_agent_coordination.errors import CircuitBreakerOpenError, ConfigurationError
from tta_agent_coordination.resilience import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerRegistry,
    CircuitBreakerSettings,
    CircuitState,
)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be >= 1"),
        ({"timeout_seconds": 0}, "timeout_seconds must be > 0"),
        ({"half_open_max_calls": 0}, "half_open_max_calls must be >= 1"),
        ({"success_threshold": 4}, "success_threshold (4) must be <= half_open_max_calls (3)"),
        ({"failure_rate_threshold": 0.0}, "failure_rate_threshold must be in (0, 1]"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold must be in (0, 1]"),
        ({"window_size": 0}, "window_size must be >= 1"),
        ({"window_size": 5, "minimum_calls": 6}, "minimum_calls must be in [1, window_size=5]"),
        ({"slow_call_threshold_s": -1}, "slow_call_threshold_s must be > 0"),
        ({"call_timeout_s": 0}, "call_timeout_s must be > 0"),
        ({"timeout_multiplier": 0.5}, "timeout_multiplier must be finite and >= 1, got 0.5"),
        ({"timeout_multiplier": float("nan")}, "timeout_multiplier must be finite and >= 1"),
        (
            {"timeout_seconds": 2, "max_timeout_seconds": 1},
            "max_timeout_seconds must be finite and >= timeout_seconds (2.0), or None; got 1.0",
        ),
        ({"max_timeout_seconds": float("inf")}, "max_timeout_seconds must be finite"),
        ({"health_check_timeout_s": 0}, "health_check_timeout_s must be > 0, got 0"),
        ({"record": (asyncio.CancelledError,)}, "CancelledError"),
        ({"record": (int,)}, "record"),
        ({"failure_threshold": "many"}, "failure_threshold"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_config_raises_configuration_error(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CircuitBreakerConfig(**kwargs)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_config_is_frozen_and_comparable() -> None:
    cfg = CircuitBreakerConfig(window_size=20)
    assert cfg.window_minimum_calls == 20
    assert cfg == CircuitBreakerConfig(window_size=20)
    assert hash(cfg) == hash(CircuitBreakerConfig(window_size=20))
    with pytest.raises(ValidationError, match="frozen"):
        cfg.failure_threshold = 1  # type: ignore[misc]


def test_open_seconds_grow_on_openings_in_a_row_up_to_the_cap() -> None:
    cfg = CircuitBreakerConfig(timeout_seconds=0.5, timeout_multiplier=2, max_timeout_seconds=5)
    assert [cfg.open_seconds(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert cfg.open_seconds(10**6) == 5.0  # no overflow, however long the outage
    assert cfg.longest_open_s == 5.0
    assert cfg.probe_lease_s == 5.0
    flat = CircuitBreakerConfig(timeout_seconds=60)  # the generic default: never grows
    assert (flat.timeout_multiplier, flat.max_timeout_seconds) == (2.0, None)
    assert [flat.open_seconds(n) for n in (1, 2, 50)] == [60.0, 60.0, 60.0]
    assert flat.health_check_timeout_s == 1.0


def test_the_redis_breaker_defaults() -> None:
    import redis.exceptions as redis_errors

    from tta_agent_coordination.resilience import REDIS_IGNORED_ERRORS, redis_breaker_config

    cfg = redis_breaker_config()
    assert (cfg.timeout_seconds, cfg.timeout_multiplier, cfg.max_timeout_seconds) == (
        0.5,
        2.0,
        5.0,
    )
    assert (cfg.failure_threshold, cfg.half_open_max_calls, cfg.success_threshold) == (5, 3, 2)
    assert cfg.health_check_timeout_s == 1.0
    assert cfg.ignore == REDIS_IGNORED_ERRORS
    assert cfg.counts_as_failure(redis_errors.MaxConnectionsError()) is None
    assert cfg.counts_as_failure(redis_errors.ConnectionError()) is True
    assert redis_breaker_config(timeout_seconds=2).max_timeout_seconds == 5.0


def test_counts_as_failure() -> None:
    cfg = CircuitBreakerConfig(record=(ConnectionError,))
    assert cfg.counts_as_failure(ConnectionError()) is True
    assert cfg.counts_as_failure(RuntimeError()) is False
    assert cfg.counts_as_failure(ValueError()) is None
    assert cfg.counts_as_failure(CircuitBreakerOpenError("x")) is None
    assert cfg.counts_as_failure(asyncio.CancelledError()) is None
    assert cfg.counts_as_failure(KeyboardInterrupt()) is None


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTA_COORD_BREAKER_FAILURE_THRESHOLD", "9")
    monkeypatch.setenv("TTA_COORD_BREAKER_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("TTA_COORD_BREAKER_WINDOW_SIZE", "50")
    monkeypatch.setenv("TTA_COORD_BREAKER_CALL_TIMEOUT_S", "none")
    cfg = CircuitBreakerSettings().to_config(record=(OSError,))
    assert (cfg.failure_threshold, cfg.timeout_seconds, cfg.window_size) == (9, 2.5, 50)
    assert cfg.call_timeout_s is None
    assert cfg.record == (OSError,)
    assert cfg.half_open_max_calls == 3


def test_settings_validation_goes_through_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTA_COORD_BREAKER_SUCCESS_THRESHOLD", "7")
    with pytest.raises(ConfigurationError, match="success_threshold"):
        CircuitBreakerSettings().to_config()


async def test_registry() -> None:
    now = [0.0]
    registry = CircuitBreakerRegistry(clock=lambda: now[0])
    fast = CircuitBreakerConfig(failure_threshold=1, timeout_seconds=1)
    a = registry.get_or_create("a", fast)
    assert registry.get_or_create("a") is a
    assert (
        registry.get_or_create("a", CircuitBreakerConfig(failure_threshold=1, timeout_seconds=1))
        is a
    )
    with pytest.raises(ConfigurationError, match="different config"):
        registry.get_or_create("a", CircuitBreakerConfig())
    b = registry.get_or_create("b")
    assert b.config == CircuitBreakerConfig()
    assert registry.get("zzz") is None
    assert registry.list_names() == ["a", "b"]
    assert "a" in registry
    assert len(registry) == 2

    async def boom() -> None:
        raise RuntimeError

    with pytest.raises(RuntimeError):
        await a.call(boom)
    assert registry.states() == {"a": CircuitState.OPEN, "b": CircuitState.CLOSED}
    assert registry.open_breakers() == ["a"]
    registry.reset_all()
    assert registry.open_breakers() == []
    assert registry.remove("a") is a
    assert registry.remove("a") is None
    assert registry.list_names() == ["b"]
    with pytest.raises(ConfigurationError):
        registry.register(CircuitBreaker("b"))
    c = registry.register(CircuitBreaker("c"))
    assert registry.get("c") is c
