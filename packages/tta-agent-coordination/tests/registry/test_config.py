"""``RegistryConfig``: defaults, derived values, validation, and how the registry takes it."""

import math

import pytest
from pydantic import ValidationError

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry, RegistryConfig
from tta_agent_coordination.settings import CoordinationSettings


def test_defaults_keep_the_original_contract():
    config = RegistryConfig()
    assert config.heartbeat_ttl_s == 30.0
    assert config.resolved_heartbeat_interval_s == 10.0
    assert config.resolved_hook_timeout_s == 5.0
    assert config.resolved_state_save_interval_s == 30.0
    assert config.state_retention_s == 24 * 3600.0
    assert config.events_limit == 10_000
    assert config.max_state_bytes == 1_000_000
    assert config.auto_reregister is True
    assert config.reap_batch == 500
    assert config.store_seen_interval_s == 60.0
    assert config.ttl_ms == 30_000
    assert config.retention_ms == 86_400_000


def test_derived_values_follow_the_settings_they_come_from():
    config = RegistryConfig(heartbeat_ttl_s=0.6)
    assert config.resolved_heartbeat_interval_s == pytest.approx(0.2)
    assert config.resolved_hook_timeout_s == pytest.approx(0.1)
    assert config.resolved_state_save_interval_s == 0.6
    explicit = RegistryConfig(
        heartbeat_ttl_s=0.6, heartbeat_interval_s=0.05, hook_timeout_s=1, state_save_interval_s=0
    )
    assert explicit.resolved_heartbeat_interval_s == 0.05
    assert explicit.resolved_hook_timeout_s == 1
    assert explicit.resolved_state_save_interval_s == 0
    assert RegistryConfig(enable_events=False).events_limit == 0
    assert RegistryConfig(events_max_len=0).events_limit == 0
    assert RegistryConfig(heartbeat_ttl_s=0.0001, state_retention_s=0.0001).ttl_ms == 1


def test_the_config_is_frozen_and_updated_copies_are_validated():
    config = RegistryConfig()
    with pytest.raises(ValidationError):
        config.reap_batch = 1  # type: ignore[misc]
    shorter = config.updated(heartbeat_ttl_s=3, reap_batch=None)
    assert shorter.heartbeat_ttl_s == 3
    assert shorter.resolved_heartbeat_interval_s == 1  # still derived from the TTL
    assert shorter.reap_batch == 500
    assert config.heartbeat_ttl_s == 30
    with pytest.raises(ConfigurationError, match="heartbeat_ttl_s: input should be greater"):
        config.updated(heartbeat_ttl_s=-1)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"heartbeat_ttl_s": 0}, "heartbeat_ttl_s: input should be greater than 0, got 0"),
        ({"heartbeat_ttl_s": math.inf}, "heartbeat_ttl_s: input should be a finite number"),
        ({"heartbeat_ttl_s": math.nan}, "heartbeat_ttl_s: input should be a finite number"),
        ({"heartbeat_interval_s": 0}, "heartbeat_interval_s: input should be greater than 0"),
        (
            {"heartbeat_ttl_s": 1, "heartbeat_interval_s": 1},
            "heartbeat_interval_s must be below heartbeat_ttl_s (1.0), got 1.0",
        ),
        (
            {"heartbeat_ttl_s": 10, "state_retention_s": 5},
            "state_retention_s must be at least heartbeat_ttl_s (10.0), got 5.0",
        ),
        (
            {"state_save_interval_s": -1},
            "state_save_interval_s: input should be greater than or equal to 0, got -1",
        ),
        ({"hook_timeout_s": 0}, "hook_timeout_s: input should be greater than 0, got 0"),
        (
            {"events_max_len": -1},
            "events_max_len: input should be greater than or equal to 0, got -1",
        ),
        ({"max_state_bytes": 0}, "max_state_bytes: input should be greater than 0, got 0"),
        ({"reap_batch": 0}, "reap_batch: input should be greater than 0, got 0"),
        ({"reap_batch": "many"}, "reap_batch: input should be a valid integer"),
        (
            {"store_seen_interval_s": -1},
            "store_seen_interval_s: input should be greater than or equal to 0, got -1",
        ),
        ({"enable_events": "sometimes"}, "enable_events: input should be a valid boolean"),
        ({"heartbeat_ttl": 5}, "heartbeat_ttl: extra inputs are not permitted"),
    ],
)
def test_each_bad_value_is_named_clearly(values, message):
    with pytest.raises(ConfigurationError) as caught:
        RegistryConfig.build(**values)
    text = str(caught.value)
    assert text.startswith("invalid registry configuration: ")
    assert message in text
    assert "\n" not in text
    assert "https://" not in text  # pydantic's documentation links are left out


def test_every_bad_value_is_named_at_once():
    with pytest.raises(ConfigurationError) as caught:
        RegistryConfig.build(reap_batch=0, max_state_bytes=0)
    assert str(caught.value) == (
        "invalid registry configuration: max_state_bytes: input should be greater than 0, "
        "got 0; reap_batch: input should be greater than 0, got 0"
    )


# --- the registry takes it -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"heartbeat_ttl_s": 0}, "heartbeat_ttl_s"),
        ({"heartbeat_ttl_s": 1, "heartbeat_interval_s": 1}, "heartbeat_interval_s must be below"),
        ({"heartbeat_ttl_s": 10, "state_retention_s": 5}, "state_retention_s must be at least"),
        ({"events_max_len": -1}, "events_max_len"),
        ({"store_seen_interval_s": -1}, "store_seen_interval_s"),
        ({"key_prefix": "bad prefix"}, "invalid key prefix"),
        ({"config": RegistryConfig(heartbeat_ttl_s=10), "state_retention_s": 5}, "at least"),
    ],
)
def test_the_constructor_refuses_bad_settings(coordination_redis, kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        RedisAgentRegistry(coordination_redis, **kwargs)


def test_keywords_build_the_config(coordination_redis):
    registry = RedisAgentRegistry(coordination_redis, heartbeat_ttl_s=6, reap_batch=7)
    assert registry.config == RegistryConfig(heartbeat_ttl_s=6, reap_batch=7)
    assert registry.heartbeat_ttl_s == 6
    assert registry.heartbeat_interval_s == 2
    assert RedisAgentRegistry(coordination_redis).config == RegistryConfig()


def test_a_config_is_taken_as_is_and_keywords_override_it(coordination_redis):
    config = RegistryConfig(heartbeat_ttl_s=9, enable_events=False)
    assert RedisAgentRegistry(coordination_redis, config=config).config is config
    overridden = RedisAgentRegistry(coordination_redis, config=config, heartbeat_ttl_s=3)
    assert overridden.config == RegistryConfig(heartbeat_ttl_s=3, enable_events=False)
    assert overridden.heartbeat_interval_s == 1


def test_settings_build_the_registry_through_its_config(coordination_redis, key_prefix):
    settings = CoordinationSettings(key_prefix=key_prefix, heartbeat_ttl_s=6)
    registry = settings.build_registry(coordination_redis, reap_batch=3)
    assert registry.config == RegistryConfig(heartbeat_ttl_s=6, reap_batch=3)
    assert registry.keys.prefix == key_prefix
    longer = settings.build_registry(coordination_redis, heartbeat_ttl_s=60)
    assert longer.heartbeat_ttl_s == 60
    given = RegistryConfig(heartbeat_ttl_s=12)
    assert settings.build_registry(coordination_redis, config=given).config is given
    assert settings.build_registry(coordination_redis, config=given, reap_batch=2).config == (
        RegistryConfig(heartbeat_ttl_s=12, reap_batch=2)
    )
    with pytest.raises(ConfigurationError, match="reap_batch"):
        settings.build_registry(coordination_redis, reap_batch=0)
