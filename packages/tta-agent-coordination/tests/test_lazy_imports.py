"""`import tta_agent_coordination` pulls no optional dependency; optional parts load lazily."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

import tta_agent_coordination

# Optional dependencies and the optional sub-packages: none is imported by the package.
FORBIDDEN = (
    "typer",
    "click",
    "rich",
    "psycopg",
    "psycopg_pool",
    "prometheus_client",
    "fakeredis",
    "lupa",
    "pytest",
    "tta_agent_coordination_postgres",
    "tta_agent_coordination.cli",
    "tta_agent_coordination.testing",
    "tta_agent_coordination.observability.prometheus",
    "opentelemetry",
)


def run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_import_adds_no_optional_module_beyond_structlog() -> None:
    # structlog's own import pulls rich when rich is installed (structlog.dev picks it
    # for pretty tracebacks), and rich is installed for the CLI. So the check runs after
    # `import structlog`: whatever the package imports on top must hold nothing optional.
    code = (
        "import sys, json, structlog; before = set(sys.modules); "
        "import tta_agent_coordination; new = set(sys.modules) - before; "
        f"print(json.dumps(sorted(m for m in new if m.split('.')[0] in {FORBIDDEN!r} "
        f"or m in {FORBIDDEN!r})))"
    )
    assert run(code) == []


def test_import_pulls_none_of_them_except_rich_through_structlog() -> None:
    code = (
        "import sys, json, tta_agent_coordination; "
        f"print(json.dumps(sorted(m for m in {FORBIDDEN!r} if sys.modules.get(m))))"
    )
    assert run(code) in ([], ["rich"])
    # rich, when present, comes from structlog alone: without rich it is not needed.
    blocked = "import sys; sys.modules['rich'] = None; import " + code.removeprefix("import sys, ")
    assert run(blocked) == []


def test_optional_parts_load_on_first_access() -> None:
    code = (
        "import sys, json, tta_agent_coordination as t; "
        "import warnings; warnings.simplefilter('ignore', DeprecationWarning); "
        "a = 'prometheus_client' in sys.modules; t.PrometheusMetrics; t.serve_metrics; "
        "b = 'prometheus_client' in sys.modules; t.cli; t.testing; "
        "print(json.dumps([a, b, 'typer' in sys.modules, 'PrometheusMetrics' in dir(t)]))"
    )
    assert run(code) == [False, True, True, False]  # a moved name is not listed


def test_lazy_names_resolve_to_the_real_objects() -> None:
    from tta_agent_coordination.observability.prometheus import PrometheusMetrics, serve_metrics

    with pytest.warns(DeprecationWarning, match="observability.prometheus"):
        assert tta_agent_coordination.PrometheusMetrics is PrometheusMetrics
    with pytest.warns(DeprecationWarning, match="observability.prometheus"):
        assert tta_agent_coordination.serve_metrics is serve_metrics
    assert "PrometheusMetrics" not in tta_agent_coordination.__all__


def test_missing_extra_gives_an_install_hint() -> None:
    code = (
        "import sys, json; sys.modules['prometheus_client'] = None; "
        "import warnings; warnings.simplefilter('ignore', DeprecationWarning)\n"
        "import tta_agent_coordination as t\n"
        "try:\n    t.PrometheusMetrics\nexcept ImportError as e:\n    print(json.dumps([str(e)]))"
    )
    (message,) = run(code)
    assert "tta-agent-coordination[prometheus]" in message
    assert "prometheus_client" in message


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = tta_agent_coordination.nothing_here


def test_star_import_needs_no_extra() -> None:
    code = (
        "import sys, json; sys.modules['prometheus_client'] = None; "
        "from tta_agent_coordination import *; print(json.dumps([]))"
    )
    assert run(code) == []


@pytest.mark.parametrize(
    ("dist", "module"),
    [
        ("tta-agent-coordination", "tta_agent_coordination"),
        ("tta-agent-coordination-postgres", "tta_agent_coordination_postgres"),
    ],
)
def test_one_version_source(dist: str, module: str) -> None:
    # hatch reads __version__ from __init__.py into the distribution's metadata.
    imported = __import__(module)
    assert importlib.metadata.version(dist) == imported.__version__
    major, minor, patch = imported.__version__.split(".")
    assert all(part.isdigit() for part in (major, minor, patch))
