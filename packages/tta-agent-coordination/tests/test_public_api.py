import importlib
import inspect
import pkgutil
import subprocess
import sys
import warnings

import pytest

import tta_agent_coordination

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(tta_agent_coordination.__path__, "tta_agent_coordination.")
    if not m.name.endswith("pytest_plugin")
)


@pytest.mark.parametrize("module_name", ["tta_agent_coordination", *MODULES])
def test_every_public_name_exists_and_is_documented(module_name):
    # A deprecated alias module warns when first imported (tested elsewhere); whether this
    # import is the first depends on the order tests run in, so the warning is not the
    # question here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
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


EVERYDAY = {
    "AgentId",
    "AgentMessage",
    "AgentMessaging",
    "AgentMessagingError",
    "AgentWorker",
    "CoordinationError",
    "CoordinationSettings",
    "FailureType",
    "MessageContext",
    "MessagePriority",
    "MessageResult",
    "MessageType",
    "PermanentError",
    "ReceivedMessage",
    "SendStatus",
    "RedisAgentRegistry",
    "RedisMessageCoordinator",
    "__version__",
    "features",
}


def test_package_root_exports_the_everyday_names_only():
    assert set(tta_agent_coordination.__all__) == EVERYDAY


@pytest.mark.parametrize("name", sorted(tta_agent_coordination._MOVED))
def test_a_name_that_moved_still_resolves_with_a_warning_naming_its_home(name):
    home = tta_agent_coordination._MOVED[name]
    module = importlib.import_module(home)
    assert name in module.__all__, f"{home} does not export {name}"
    with pytest.warns(DeprecationWarning, match=rf"{name} is deprecated; import it from {home}"):
        value = getattr(tta_agent_coordination, name)
    assert value is getattr(module, name)


def test_moved_names_are_not_listed_by_dir_or_star_import():
    assert not set(tta_agent_coordination._MOVED) & set(dir(tta_agent_coordination))
    assert not set(tta_agent_coordination._MOVED) & set(tta_agent_coordination.__all__)


def test_the_everyday_names_load_without_a_warning():
    code = (
        "import warnings; warnings.simplefilter('error'); "
        "from tta_agent_coordination import *; "
        "import tta_agent_coordination as t; [getattr(t, n) for n in t.__all__]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)


def test_importing_the_package_pulls_no_optional_dependency():
    code = (
        "import sys, tta_agent_coordination; "
        "print(','.join(m for m in ('fakeredis', 'pytest', 'lupa') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
