"""``resilience`` is usable without Redis: none of its modules imports the ``redis`` layer.

A breaker can guard an LLM call in a process that never talks to Redis. The package root
imports every layer, so the check replaces it with an empty package: what loads is what
the resilience modules themselves import.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

STUB_ROOT = (
    "import importlib.util, json, sys, types\n"
    "spec = importlib.util.find_spec('tta_agent_coordination')\n"
    "root = types.ModuleType('tta_agent_coordination')\n"
    "root.__path__ = list(spec.submodule_search_locations)\n"
    "sys.modules['tta_agent_coordination'] = root\n"
)


def loaded_after(statements: str) -> list[str]:
    code = (
        STUB_ROOT + statements + "\nprint(json.dumps(sorted(m for m in sys.modules "
        "if m.startswith('tta_agent_coordination.') and m.split('.')[1] in "
        "('redis', 'runtime', 'cli', 'testing', 'settings'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    "module",
    [
        "tta_agent_coordination.resilience",
        "tta_agent_coordination.resilience.breaker_state",
        "tta_agent_coordination.resilience.breaker_store",
        "tta_agent_coordination.resilience.breaker_registry",
        "tta_agent_coordination.resilience.circuit_breaker",
        "tta_agent_coordination.resilience.breaker_metrics",
        "tta_agent_coordination.resilience.guard",
        "tta_agent_coordination.resilience.retry",
        "tta_agent_coordination.resilience.defaults",
    ],
)
def test_resilience_imports_no_higher_layer(module: str) -> None:
    assert loaded_after(f"import {module}") == []


def test_the_deprecated_shim_reaches_the_redis_store_only_when_asked() -> None:
    statements = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "import tta_agent_coordination.resilience.stores as stores\n"
    )
    assert loaded_after(statements) == []
    loaded = loaded_after(statements + "stores.RedisBreakerStore")
    assert "tta_agent_coordination.redis.breaker_store" in loaded


def test_importing_resilience_from_the_installed_package_loads_no_redis_module() -> None:
    # The real package root this time: it loads its transport and runtime names lazily.
    code = (
        "import json, sys, tta_agent_coordination.resilience\n"
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.startswith('tta_agent_coordination.redis'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
