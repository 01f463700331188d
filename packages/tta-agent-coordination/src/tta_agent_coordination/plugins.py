"""Plugins: message stores, metrics exporters and CLI sub-commands from other distributions.

A distribution contributes a plugin by declaring an entry point in one of three groups::

    [project.entry-points."tta_agent_coordination.stores"]
    postgres = "tta_agent_coordination_postgres.store:PostgresMessageStore"

    [project.entry-points."tta_agent_coordination.metrics"]
    prometheus = "tta_agent_coordination.observability.prometheus:PrometheusMetrics"

    [project.entry-points."tta_agent_coordination.cli"]
    store = "tta_agent_coordination_postgres.cli:app"      # a typer.Typer

A store entry point names a :class:`~tta_agent_coordination.store.MessageStore` subclass
or a factory returning one; a metrics entry point names a class or factory returning an
object that implements :class:`~tta_agent_coordination.observability.metrics.MessageMetrics`.
Discovery reads installed metadata only (``importlib.metadata``); a plugin's module is
imported when it is loaded, never before. See ``docs/plugins.md``.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.observability.metrics import MessageMetrics
from tta_agent_coordination.store import MessageStore

__all__ = [
    "CLI_GROUP",
    "GROUPS",
    "METRICS_GROUP",
    "STORES_GROUP",
    "Plugin",
    "PluginError",
    "discover",
    "load_metrics",
    "load_store",
]

STORES_GROUP = "tta_agent_coordination.stores"
"""Entry-point group of message stores (name -> ``MessageStore`` subclass or factory)."""
METRICS_GROUP = "tta_agent_coordination.metrics"
"""Entry-point group of metrics exporters (name -> ``MessageMetrics`` class or factory)."""
CLI_GROUP = "tta_agent_coordination.cli"
"""Entry-point group of ``tta-coord`` sub-commands (name -> ``typer.Typer``)."""
GROUPS = (STORES_GROUP, METRICS_GROUP, CLI_GROUP)
"""Every entry-point group the library reads."""


class PluginError(ConfigurationError):
    """A plugin is unknown, ambiguous, fails to load, or gives the wrong kind of object."""


@dataclass(frozen=True)
class Plugin:
    """One entry point of a plugin group, not yet loaded."""

    name: str
    """The name the plugin is asked for by (``load_store("postgres")``)."""
    group: str
    """The entry-point group."""
    value: str
    """``module:attribute`` of the object."""
    distribution: str | None
    """The distribution that declares it (None when the metadata does not say)."""
    version: str | None
    """That distribution's version."""

    def describe(self) -> str:
        """``'name' (module:attr) from dist version`` for messages."""
        where = f" from {self.distribution} {self.version or ''}".rstrip()
        return f"plugin {self.name!r} ({self.value}){where if self.distribution else ''}"

    def load(self) -> Any:
        """Import the plugin's module and return the object the entry point names.

        Raises:
            PluginError: the import or the attribute lookup failed.
        """
        entry_point = importlib.metadata.EntryPoint(self.name, self.value, self.group)
        try:
            return entry_point.load()
        except Exception as exc:
            raise PluginError(
                f"{self.describe()} failed to load: {type(exc).__name__}: {exc}"
            ) from exc


def discover(group: str) -> list[Plugin]:
    """Every entry point of ``group`` in the installed distributions, sorted by name.

    Two distributions may declare the same name; both are returned (loaders decide).
    Nothing is imported.
    """
    found: list[Plugin] = []
    for ep in importlib.metadata.entry_points(group=group):
        dist = ep.dist
        found.append(
            Plugin(
                name=ep.name,
                group=group,
                value=ep.value,
                distribution=dist.name if dist is not None else None,
                version=dist.version if dist is not None else None,
            )
        )
    return sorted(found, key=lambda p: (p.name, p.distribution or "", p.value))


def _find(group: str, kind: str, name: str) -> Plugin:
    plugins = discover(group)
    matches = [p for p in plugins if p.name == name]
    if not matches:
        known = ", ".join(sorted({p.name for p in plugins})) or "none installed"
        raise PluginError(
            f"unknown {kind} {name!r} (known: {known}); install the distribution that "
            f"provides it, which declares it in the {group!r} entry-point group"
        )
    if len({(p.value, p.distribution) for p in matches}) > 1:
        origins = "; ".join(p.describe() for p in matches)
        raise PluginError(f"{kind} {name!r} is declared more than once: {origins}")
    return matches[0]


def _build(plugin: Plugin, kwargs: dict[str, Any]) -> Any:
    factory = plugin.load()
    if not callable(factory):
        raise PluginError(f"{plugin.describe()} is a {type(factory).__name__}, not callable")
    try:
        return factory(**kwargs)
    except TypeError as exc:
        # Almost always a wrong keyword: say which plugin refused it.
        raise PluginError(f"{plugin.describe()} refused its arguments: {exc}") from exc


def load_store(name: str, **kwargs: Any) -> MessageStore:
    """Create the message store plugin ``name`` with ``kwargs``.

    ``load_store("postgres", dsn="postgresql://app@db/app")`` is
    ``PostgresMessageStore(dsn=...)`` when the Postgres adapter is installed.

    Raises:
        PluginError: no such store, several with that name, it fails to load, refuses
            the arguments, or does not give a ``MessageStore``.
    """
    plugin = _find(STORES_GROUP, "message store", name)
    store = _build(plugin, kwargs)
    if not isinstance(store, MessageStore):
        raise PluginError(f"{plugin.describe()} gave a {type(store).__name__}, not a MessageStore")
    return store


def load_metrics(name: str, **kwargs: Any) -> MessageMetrics:
    """Create the metrics exporter plugin ``name`` with ``kwargs``.

    Built in: ``noop``, ``memory`` and ``prometheus`` (the last needs the
    ``prometheus`` extra).

    Raises:
        PluginError: no such exporter, several with that name, it fails to load,
            refuses the arguments, or does not implement ``MessageMetrics``.
    """
    plugin = _find(METRICS_GROUP, "metrics exporter", name)
    metrics = _build(plugin, kwargs)
    if not isinstance(metrics, MessageMetrics):
        raise PluginError(
            f"{plugin.describe()} gave a {type(metrics).__name__}, which does not "
            "implement MessageMetrics"
        )
    return metrics
