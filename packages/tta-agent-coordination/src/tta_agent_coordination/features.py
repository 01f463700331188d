"""Which optional parts of the library are installed and usable here.

:func:`features` answers from installed metadata and module specs, without importing the
optional packages (importing psycopg or fakeredis costs time and may have side effects).
``tta-coord doctor`` prints the same table.
"""

from __future__ import annotations

import ctypes.util
import importlib.metadata
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FEATURE_NAMES", "Feature", "features"]


@dataclass(frozen=True)
class Feature:
    """One optional part: is it installed, can it be used, and why not."""

    name: str
    """Short name (``postgres``, ``prometheus``, ...)."""
    description: str
    """What it adds."""
    installed: bool
    """Its distribution (or module) is present."""
    usable: bool
    """Installed and everything it needs is present and compatible."""
    version: str | None
    """The installed version of its distribution, when known."""
    reason: str
    """Why it is not usable, how to install it, or what makes it usable."""


@dataclass(frozen=True)
class _Spec:
    name: str
    description: str
    module: str
    distribution: str
    install: str
    needs: tuple[str, ...] = ()
    extra_check: Callable[[], str | None] | None = None
    """Returns None when usable, else why not."""


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package that fails or a broken spec
        return False


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _major_minor(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _postgres_check() -> str | None:
    core = _version("tta-agent-coordination")
    adapter = _version("tta-agent-coordination-postgres")
    if core and adapter and _major_minor(core) != _major_minor(adapter):
        # Both are released together; 0.x minors may break each other (semver for 0.x).
        return (
            f"tta-agent-coordination-postgres {adapter} does not match "
            f"tta-agent-coordination {core}: install the same minor version of both"
        )
    if not (_has_module("psycopg_binary") or _has_module("psycopg_c")) and not (
        ctypes.util.find_library("pq")
    ):
        return "psycopg finds no libpq: install psycopg[binary] or the system libpq"
    return None


def _otel_check() -> str | None:
    # Other opentelemetry-* distributions share the namespace: the API must be there.
    if _version("opentelemetry-api") is None:
        return "opentelemetry-api missing: pip install 'tta-agent-coordination[otel]'"
    return None


def _hiredis_check() -> str | None:
    # redis-py is a core dependency and already imported, so asking it is free.
    import redis.utils

    if not getattr(redis.utils, "HIREDIS_AVAILABLE", False):
        return "redis-py does not use it (an incompatible hiredis version?)"
    return None


_SPECS: tuple[_Spec, ...] = (
    _Spec(
        "postgres",
        "Postgres adapter: durable message history and restore after a Redis loss",
        "tta_agent_coordination_postgres",
        "tta-agent-coordination-postgres",
        "pip install 'tta-agent-coordination[postgres]'",
        needs=("psycopg", "psycopg_pool"),
        extra_check=_postgres_check,
    ),
    _Spec(
        "prometheus",
        "Prometheus exporter for message, queue, worker, registry and breaker metrics",
        "prometheus_client",
        "prometheus-client",
        "pip install 'tta-agent-coordination[prometheus]'",
    ),
    _Spec(
        "dashboard",
        "web dashboard (tta-coord dashboard): agents, queues, dead letters, breakers",
        "starlette",
        "starlette",
        "pip install 'tta-agent-coordination[dashboard]'",
        needs=("jinja2", "uvicorn", "python_multipart"),
    ),
    _Spec(
        "otel",
        "OpenTelemetry tracing: spans and W3C trace context in message headers",
        # A namespace package: found without importing anything of the API.
        "opentelemetry",
        "opentelemetry-api",
        "pip install 'tta-agent-coordination[otel]'",
        extra_check=_otel_check,
    ),
    _Spec(
        "hiredis",
        "fast reply parser for redis-py",
        "hiredis",
        "hiredis",
        "pip install hiredis",
        extra_check=_hiredis_check,
    ),
    _Spec(
        "fakeredis",
        "in-process FakeRedis with Lua, for tests without a server",
        "fakeredis",
        "fakeredis",
        "pip install 'tta-agent-coordination[testing]'",
        needs=("lupa",),
    ),
    _Spec(
        "tta_agents",
        "the TTA extension: TTA agent types and pipeline",
        "tta_agents",
        "tta-agents",
        # Not on PyPI before the first release: naming a package that does not exist
        # sends users to a pip error (issue 21). Say what is true until it is published.
        "the TTA extension (tta-agents) is not on PyPI yet; "
        "use the workspace member or its git URL (README, Install)",
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in _SPECS)
"""The names :func:`features` reports, in order."""


def _check(spec: _Spec) -> Feature:
    version = _version(spec.distribution)
    if not _has_module(spec.module):
        return Feature(
            spec.name, spec.description, False, False, version, f"not installed: {spec.install}"
        )
    missing = [name for name in spec.needs if not _has_module(name)]
    if missing:
        reason = f"installed, but {', '.join(missing)} missing: {spec.install}"
        return Feature(spec.name, spec.description, True, False, version, reason)
    problem = spec.extra_check() if spec.extra_check is not None else None
    if problem is not None:
        return Feature(spec.name, spec.description, True, False, version, problem)
    return Feature(spec.name, spec.description, True, True, version, "installed and usable")


def features() -> dict[str, Feature]:
    """Every optional part, by name (see :data:`FEATURE_NAMES`), installed or not.

    Nothing optional is imported: the answer comes from module specs and distribution
    metadata.
    """
    return {spec.name: _check(spec) for spec in _SPECS}
