import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import tta_agent_coordination

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(tta_agent_coordination.__path__, "tta_agent_coordination.")
    if not m.name.endswith("pytest_plugin")
)


@pytest.mark.parametrize("module_name", ["tta_agent_coordination", *MODULES])
def test_every_public_name_exists_and_is_documented(module_name):
    module = importlib.import_module(module_name)
    assert module.__doc__, f"{module_name} has no module docstring"
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{module_name} has no __all__"
    assert len(exported) == len(set(exported)), f"{module_name}.__all__ repeats a name"
    for name in exported:
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name}"
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{module_name}.{name} has no docstring"


def test_package_root_exports_the_core_api():
    for name in [
        "AgentId",
        "AgentMessage",
        "RedisMessageCoordinator",
        "RedisAgentRegistry",
        "CircuitBreaker",
        "RetryPolicy",
        "RedisGuard",
        "CoordinationError",
    ]:
        assert name in tta_agent_coordination.__all__


def test_importing_the_package_pulls_no_optional_dependency():
    code = (
        "import sys, tta_agent_coordination; "
        "print(','.join(m for m in ('fakeredis', 'pytest', 'lupa') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
