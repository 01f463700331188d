"""The runtime depends on the interfaces, never on the Redis transport (docs/architecture.md).

``import tta_agent_coordination.runtime`` always runs the top-level package first, and
that re-exports ``RedisMessageCoordinator`` and ``RedisAgentRegistry`` (and imports
``resilience``, which imports ``redis.keys``), so Redis is in ``sys.modules`` whatever
the runtime imports. The check therefore imports the runtime's modules in a fresh
interpreter under a bare stand-in for the top-level package: what is loaded then is
what the runtime's own modules pull in.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import tta_agent_coordination.runtime as runtime

# Every module of the runtime but runtime.rpc, the deprecated alias of the request/reply
# helpers (now `replies` and `redis.reply_router`).
RUNTIME_MODULES = tuple(
    f"tta_agent_coordination.runtime{name}"
    for name in (
        "",
        ".acks",
        ".adaptive",
        ".context",
        ".deliveries",
        ".fetching",
        ".handlers",
        ".leases",
        ".maintenance",
        ".presence",
        ".stats",
        ".stopping",
        ".supervision",
        ".worker",
    )
)

# The transport (ours and redis-py) and every layer above the runtime.
FORBIDDEN = (
    "redis",
    "tta_agent_coordination.redis",
    "tta_agent_coordination.settings",
    "tta_agent_coordination.plugins",
    "tta_agent_coordination.features",
    "tta_agent_coordination.testing",
    "tta_agent_coordination.cli",
    "tta_agent_coordination.observability.prometheus",
)

PROBE = f"""
import importlib, importlib.util, json, sys, types
spec = importlib.util.find_spec("tta_agent_coordination")
package = types.ModuleType("tta_agent_coordination")
package.__path__ = list(spec.submodule_search_locations)
sys.modules["tta_agent_coordination"] = package
for name in {RUNTIME_MODULES!r}:
    importlib.import_module(name)
forbidden = {FORBIDDEN!r}
print(json.dumps(sorted(
    m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden)
)))
"""


def loaded_forbidden_modules(probe: str = PROBE) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)


def test_the_runtime_imports_no_transport_and_no_higher_layer() -> None:
    assert loaded_forbidden_modules() == []


def test_every_runtime_module_is_checked() -> None:
    found = {f"{runtime.__name__}.{m.name}" for m in pkgutil.iter_modules(runtime.__path__)}
    assert found - {f"{runtime.__name__}.rpc"} == set(RUNTIME_MODULES[1:])
