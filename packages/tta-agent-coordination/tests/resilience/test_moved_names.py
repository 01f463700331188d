"""The resilience names that moved keep working from their old paths, with a warning.

Old -> new: ``resilience.stores`` -> ``resilience.breaker_state`` /
``resilience.breaker_store`` / ``redis.breaker_store``; ``resilience.registry`` ->
``resilience.breaker_registry``; ``resilience.RedisBreakerStore`` ->
``redis.breaker_store.RedisBreakerStore``. Each alias is removed in 0.3.0.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from types import ModuleType

import pytest

import tta_agent_coordination.resilience as resilience
from tta_agent_coordination.redis import breaker_store as redis_breaker_store
from tta_agent_coordination.resilience import breaker_registry, breaker_state, breaker_store


def fresh_import(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    """Import ``name`` again (a module warns once, on its first import)."""
    monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module(name)


def test_the_stores_module_warns_and_reexports_every_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.warns(
        DeprecationWarning,
        match=r"^tta_agent_coordination\.resilience\.stores is deprecated; import from "
        r"tta_agent_coordination\.resilience\.breaker_state, "
        r"tta_agent_coordination\.resilience\.breaker_store or "
        r"tta_agent_coordination\.redis\.breaker_store \(the alias is removed in 0\.3\.0\)$",
    ):
        stores = fresh_import(monkeypatch, "tta_agent_coordination.resilience.stores")
    for name in ("Admission", "BreakerSnapshot", "CircuitState", "Outcome", "CLOSED_SNAPSHOT"):
        assert getattr(stores, name) is getattr(breaker_state, name)
    for name in ("BreakerStore", "BreakerStoreUnavailableError", "InMemoryBreakerStore"):
        assert getattr(stores, name) is getattr(breaker_store, name)
    assert stores.RedisBreakerStore is redis_breaker_store.RedisBreakerStore
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        _ = stores.nothing


def test_the_registry_module_warns_and_reexports_the_breaker_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.warns(
        DeprecationWarning,
        match=r"^tta_agent_coordination\.resilience\.registry is deprecated; import from "
        r"tta_agent_coordination\.resilience\.breaker_registry "
        r"\(the alias is removed in 0\.3\.0\)$",
    ):
        registry = fresh_import(monkeypatch, "tta_agent_coordination.resilience.registry")
    assert registry.CircuitBreakerRegistry is breaker_registry.CircuitBreakerRegistry
    assert resilience.CircuitBreakerRegistry is breaker_registry.CircuitBreakerRegistry


def test_redis_breaker_store_from_resilience_warns_where_it_is_used() -> None:
    expected = (
        r"^tta_agent_coordination\.resilience\.RedisBreakerStore is deprecated; import from "
        r"tta_agent_coordination\.redis\.breaker_store \(the alias is removed in 0\.3\.0\)$"
    )
    with pytest.warns(DeprecationWarning, match=expected) as caught:
        store_class = resilience.RedisBreakerStore
    assert store_class is redis_breaker_store.RedisBreakerStore
    assert caught[0].filename == __file__  # stacklevel points at the caller
    with pytest.warns(DeprecationWarning, match=expected):
        from tta_agent_coordination.resilience import RedisBreakerStore
    assert RedisBreakerStore is redis_breaker_store.RedisBreakerStore
    assert "RedisBreakerStore" not in resilience.__all__


def test_the_package_and_the_new_paths_import_without_a_warning() -> None:
    modules = (
        "tta_agent_coordination",
        "tta_agent_coordination.resilience",
        "tta_agent_coordination.resilience.breaker_state",
        "tta_agent_coordination.resilience.breaker_store",
        "tta_agent_coordination.resilience.breaker_registry",
        "tta_agent_coordination.redis.breaker_store",
        "tta_agent_coordination.redis.breaker_scripts",
    )
    code = "; ".join(f"import {m}" for m in modules)
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        _ = resilience.nothing_here  # type: ignore[attr-defined]
