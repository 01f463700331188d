"""features(): which optional parts are installed and usable, found without importing them."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import subprocess
import sys

import pytest

from tta_agent_coordination import features
from tta_agent_coordination.features import FEATURE_NAMES, Feature

# The package's `features` attribute is the function; the module is reached this way.
features_module = importlib.import_module("tta_agent_coordination.features")


def test_every_feature_is_reported_in_order() -> None:
    found = features()
    assert list(found) == list(FEATURE_NAMES)
    assert set(FEATURE_NAMES) >= {"postgres", "prometheus", "hiredis", "fakeredis", "tta_agents"}
    for name, feature in found.items():
        assert isinstance(feature, Feature)
        assert feature.name == name
        assert feature.description
        assert not (feature.usable and not feature.installed)


def test_the_dev_environment_has_the_extras() -> None:
    found = features()
    extras = ("postgres", "prometheus", "dashboard", "otel", "hiredis", "fakeredis", "tta_agents")
    for name in extras:
        assert found[name].installed, found[name]
        assert found[name].usable, found[name]
        assert found[name].reason == "installed and usable"
    assert found["postgres"].version == importlib.metadata.version(
        "tta-agent-coordination-postgres"
    )
    assert found["tta_agents"].version == importlib.metadata.version("tta-agents")


def test_without_the_tta_extension_the_hint_names_no_missing_package(monkeypatch) -> None:
    hide_modules(monkeypatch, "tta_agents")
    found = features()["tta_agents"]
    assert not found.installed
    assert found.reason == (
        "not installed: the TTA extension (tta-agents) is not on PyPI yet; "
        "use the workspace member or its git URL (README, Install)"
    )


def hide_modules(monkeypatch: pytest.MonkeyPatch, *hidden: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None):
        return None if name in hidden else real(name, package)

    monkeypatch.setattr(features_module.importlib.util, "find_spec", find_spec)


def test_missing_module_is_not_installed(monkeypatch) -> None:
    hide_modules(monkeypatch, "prometheus_client")
    feature = features()["prometheus"]
    assert not feature.installed
    assert not feature.usable
    assert "tta-agent-coordination[prometheus]" in feature.reason


def test_fakeredis_without_lupa_is_installed_but_not_usable(monkeypatch) -> None:
    hide_modules(monkeypatch, "lupa")
    feature = features()["fakeredis"]
    assert feature.installed
    assert not feature.usable
    assert "lupa missing" in feature.reason


def test_postgres_without_libpq_is_not_usable(monkeypatch) -> None:
    hide_modules(monkeypatch, "psycopg_binary", "psycopg_c")
    monkeypatch.setattr(features_module.ctypes.util, "find_library", lambda name: None)
    feature = features()["postgres"]
    assert feature.installed
    assert not feature.usable
    assert "libpq" in feature.reason


def test_postgres_adapter_of_another_minor_is_not_usable(monkeypatch) -> None:
    real = importlib.metadata.version

    def version(dist: str) -> str:
        return "0.9.0" if dist == "tta-agent-coordination-postgres" else real(dist)

    monkeypatch.setattr(features_module.importlib.metadata, "version", version)
    feature = features()["postgres"]
    assert feature.installed
    assert not feature.usable
    assert "same minor version" in feature.reason
    assert feature.version == "0.9.0"


def test_hiredis_not_used_by_redis_py(monkeypatch) -> None:
    import redis.utils

    monkeypatch.setattr(redis.utils, "HIREDIS_AVAILABLE", False)
    feature = features()["hiredis"]
    assert feature.installed
    assert not feature.usable
    assert "redis-py does not use it" in feature.reason


def test_a_broken_spec_counts_as_missing(monkeypatch) -> None:
    def find_spec(name: str, package: str | None = None):
        raise ValueError("broken")

    monkeypatch.setattr(features_module.importlib.util, "find_spec", find_spec)
    assert not any(f.installed for f in features().values())


def test_features_imports_no_optional_package() -> None:
    code = (
        "import sys, json, tta_agent_coordination as t; t.features(); "
        "print(json.dumps(sorted(m for m in ('psycopg', 'psycopg_pool', 'prometheus_client', "
        "'fakeredis', 'lupa', 'tta_agent_coordination_postgres') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_dashboard_without_jinja2_is_installed_but_not_usable(monkeypatch) -> None:
    hide_modules(monkeypatch, "jinja2")
    feature = features()["dashboard"]
    assert feature.installed
    assert not feature.usable
    assert "jinja2 missing" in feature.reason
    assert "tta-agent-coordination[dashboard]" in feature.reason


def test_otel_namespace_without_the_api_is_not_usable(monkeypatch) -> None:
    real = importlib.metadata.version

    def version(dist: str) -> str:
        if dist == "opentelemetry-api":
            raise importlib.metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(features_module.importlib.metadata, "version", version)
    feature = features()["otel"]
    assert feature.installed
    assert not feature.usable
    assert "tta-agent-coordination[otel]" in feature.reason


def test_otel_missing_is_not_installed(monkeypatch) -> None:
    hide_modules(monkeypatch, "opentelemetry")
    feature = features()["otel"]
    assert not feature.installed
    assert "tta-agent-coordination[otel]" in feature.reason
