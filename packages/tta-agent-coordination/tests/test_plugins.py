"""Plugin discovery through the real importlib.metadata, with an example plugin distribution.

The example is a real (if tiny) installed distribution: a module and a ``*.dist-info``
with ``METADATA`` and ``entry_points.txt``, put on ``sys.path``. It is the plugin that
``docs/plugins.md`` walks through.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tta_agent_coordination.observability.metrics import InMemoryMessageMetrics, NoOpMessageMetrics
from tta_agent_coordination.plugins import (
    CLI_GROUP,
    METRICS_GROUP,
    STORES_GROUP,
    Plugin,
    PluginError,
    discover,
    load_metrics,
    load_store,
)
from tta_agent_coordination.store import MessageStore

EXAMPLE_PLUGIN = '''
"""An example plugin: a message store kept in memory and a metrics exporter that counts."""

from tta_agent_coordination.observability.metrics import InMemoryMessageMetrics
from tta_agent_coordination.store import MessageStore


class MemoryStore(MessageStore):
    """Keeps every event in lists (an example, not for production)."""

    def __init__(self, *, label="default"):
        self.label = label
        self.events = []
        self.agents = []

    async def record(self, events):
        self.events.extend(events)

    async def record_agents(self, events):
        self.agents.extend(events)

    async def restore(self, coordinator):
        return 0


def counting_metrics(*, prefix=""):
    """A factory: entry points may name a function as well as a class."""
    metrics = InMemoryMessageMetrics()
    metrics.prefix = prefix
    return metrics


def not_a_store(**kwargs):
    return object()


NOT_CALLABLE = 42
'''


def install_distribution(
    root: Path, dist: str, groups: dict[str, dict[str, str]], module: str, code: str
) -> None:
    """Write ``module`` and the dist-info of ``dist`` declaring ``groups`` under ``root``."""
    (root / f"{module}.py").write_text(textwrap.dedent(code))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    sections = []
    for group, entries in groups.items():
        lines = "\n".join(f"{name} = {target}" for name, target in entries.items())
        sections.append(f"[{group}]\n{lines}\n")
    (info / "entry_points.txt").write_text("\n".join(sections))


@pytest.fixture
def example_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    module = f"example_plugin_{tmp_path.name.replace('-', '_')}"
    install_distribution(
        tmp_path,
        "example-coordination-plugin",
        {
            STORES_GROUP: {
                "memory-example": f"{module}:MemoryStore",
                "not-a-store": f"{module}:not_a_store",
                "not-callable": f"{module}:NOT_CALLABLE",
                "missing-module": f"{module}_nowhere:MemoryStore",
            },
            METRICS_GROUP: {
                "counting": f"{module}:counting_metrics",
                "bogus": f"{module}:not_a_store",
            },
        },
        module,
        EXAMPLE_PLUGIN,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield module
    sys.modules.pop(module, None)


def test_discover_reads_installed_metadata_without_importing(example_plugin) -> None:
    stores = {p.name: p for p in discover(STORES_GROUP)}
    assert stores["memory-example"] == Plugin(
        name="memory-example",
        group=STORES_GROUP,
        value=f"{example_plugin}:MemoryStore",
        distribution="example-coordination-plugin",
        version="1.2.3",
    )
    assert "postgres" in stores  # the adapter registers itself
    assert example_plugin not in sys.modules
    names = [p.name for p in discover(STORES_GROUP)]
    assert names == sorted(names)


def test_load_store_from_the_example_plugin(example_plugin) -> None:
    store = load_store("memory-example", label="mine")
    assert isinstance(store, MessageStore)
    assert type(store).__module__ == example_plugin
    assert store.label == "mine"  # type: ignore[attr-defined]


def test_load_metrics_from_a_factory(example_plugin) -> None:
    metrics = load_metrics("counting", prefix="p")
    assert isinstance(metrics, InMemoryMessageMetrics)
    assert metrics.prefix == "p"  # type: ignore[attr-defined]


def test_built_in_metrics_exporters() -> None:
    assert isinstance(load_metrics("noop"), NoOpMessageMetrics)
    assert isinstance(load_metrics("memory"), InMemoryMessageMetrics)
    from tta_agent_coordination.observability.prometheus import PrometheusMetrics

    assert isinstance(load_metrics("prometheus", namespace="x"), PrometheusMetrics)


def test_postgres_store_is_registered() -> None:
    from tta_agent_coordination_postgres import PostgresMessageStore

    store = load_store("postgres", dsn="postgresql://nobody@127.0.0.1:1/none", schema="s1")
    assert isinstance(store, PostgresMessageStore)  # built, not connected


@pytest.mark.parametrize(
    ("call", "fragments"),
    [
        (lambda: load_store("no-such-store"), ["unknown message store", "postgres"]),
        (lambda: load_metrics("no-such-metrics"), ["unknown metrics exporter", "memory"]),
        (lambda: load_store("not-a-store"), ["gave a object, not a MessageStore"]),
        (lambda: load_store("not-callable"), ["is a int, not callable"]),
        (lambda: load_store("missing-module"), ["failed to load", "ModuleNotFoundError"]),
        (lambda: load_store("memory-example", colour="red"), ["refused its arguments"]),
        (lambda: load_metrics("bogus"), ["does not implement MessageMetrics"]),
    ],
)
def test_clear_errors(example_plugin, call, fragments) -> None:
    with pytest.raises(PluginError) as caught:
        call()
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert "example-coordination-plugin" in str(caught.value) or "unknown" in str(caught.value)


def test_a_name_declared_twice_is_ambiguous(tmp_path: Path, monkeypatch) -> None:
    for dist in ("first-dup", "second-dup"):
        root = tmp_path / dist
        root.mkdir()
        module = f"{dist.replace('-', '_')}_{tmp_path.name.replace('-', '_')}"
        install_distribution(
            root, dist, {METRICS_GROUP: {"twin": f"{module}:make"}}, module, "make = dict\n"
        )
        monkeypatch.syspath_prepend(str(root))
    with pytest.raises(PluginError, match="declared more than once") as caught:
        load_metrics("twin")
    assert "first-dup" in str(caught.value)
    assert "second-dup" in str(caught.value)


def test_plugin_describe_without_distribution() -> None:
    plugin = Plugin("x", CLI_GROUP, "m:a", None, None)
    assert plugin.describe() == "plugin 'x' (m:a)"
    assert Plugin("x", CLI_GROUP, "m:a", "d", "1").describe() == "plugin 'x' (m:a) from d 1"
