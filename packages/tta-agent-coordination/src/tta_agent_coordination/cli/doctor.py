"""``tta-coord doctor``: can this machine use the configured Redis, and what is installed."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

import redis.exceptions as redis_errors
import typer
from rich.markup import escape
from rich.table import Table

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import CoordinationError
from tta_agent_coordination.features import features
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.store_marker import read_store_marker
from tta_agent_coordination.redis.topology import describe_topology
from tta_agent_coordination.settings import CoordinationSettings, redact_url

from .connect import connect_store, get_state, run_async
from .errors import EXIT_FAILURE, not_redis
from .output import JSON_OPTION, out_console, print_json

__all__ = [
    "Check",
    "doctor",
    "optional_parts",
    "register",
    "server_checks",
    "store_checks",
    "topology_check",
]

Status = Literal["ok", "warn", "fail", "skip"]

MIN_STREAMS_VERSION = (5, 0)
TESTED_VERSION = (7, 0)


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    status: Status
    detail: str
    required: bool = True


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to ``app``."""
    app.command("doctor")(doctor)


def optional_parts() -> list[Check]:
    """Which optional parts are installed and usable (:func:`features`), not imported."""
    checks: list[Check] = []
    for feature in features().values():
        if not feature.installed:
            status: Status = "skip"
            detail = f"{feature.reason} ({feature.description})"
        elif feature.usable:
            status, detail = "ok", f"{feature.version or 'unknown version'} ({feature.description})"
        else:
            status, detail = "warn", f"{feature.version or 'unknown version'}: {feature.reason}"
        checks.append(Check(feature.name, status, detail, required=False))
    return checks


def _version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _not_checked() -> list[Check]:
    return [
        Check(name, "skip", "not checked: no connection")
        for name in ("server version", "lua", "streams")
    ]


async def server_checks(client: RedisClient, server: str) -> list[Check]:
    """Connectivity, version, Lua and Streams support of the server behind ``client``."""
    checks: list[Check] = []
    started = time.perf_counter()
    try:
        await client.ping()  # pyright: ignore[reportUnknownMemberType]
    except redis_errors.InvalidResponse as exc:
        checks.append(Check("connect", "fail", not_redis(server, exc)))
        return checks + _not_checked()
    except (redis_errors.RedisError, redis_errors.RedisClusterException, OSError) as exc:
        checks.append(Check("connect", "fail", f"{server}: {type(exc).__name__}: {exc}"))
        return checks + _not_checked()
    elapsed_ms = (time.perf_counter() - started) * 1000
    checks.append(Check("connect", "ok", f"{server} answered PING in {elapsed_ms:.1f} ms"))

    info: dict[str, Any] = {}
    try:
        info = dict(await client.info("server"))
        memory = dict(await client.info("memory"))
    except (redis_errors.RedisError, redis_errors.RedisClusterException, OSError) as exc:
        memory = {}
        checks.append(Check("server version", "fail", f"INFO failed: {exc}"))
    version_text = str(info.get("redis_version", "")) if info else ""
    version = _version(version_text) if version_text else ()
    if info:
        mode = info.get("redis_mode", "standalone")
        if not version:
            checks.append(Check("server version", "warn", "INFO server gave no redis_version"))
        elif version < TESTED_VERSION:
            checks.append(
                Check(
                    "server version",
                    "warn",
                    f"Redis {version_text} ({mode}); the library is tested on Redis >= 7",
                )
            )
        else:
            checks.append(Check("server version", "ok", f"Redis {version_text} ({mode})"))
    policy = str(memory.get("maxmemory_policy", "")) if memory else ""
    if policy and policy != "noeviction":
        checks.append(
            Check(
                "maxmemory policy",
                "warn",
                f"{policy}: Redis may evict queue keys under memory pressure and lose "
                "messages; use noeviction",
                required=False,
            )
        )
    elif policy:
        checks.append(Check("maxmemory policy", "ok", policy, required=False))

    try:
        reply = await client.eval("return 1", 0)  # pyright: ignore[reportUnknownMemberType]
        lua_ok = int(reply) == 1
        checks.append(
            Check("lua", "ok" if lua_ok else "fail", "EVAL works" if lua_ok else repr(reply))
        )
    except (redis_errors.RedisError, redis_errors.RedisClusterException, OSError) as exc:
        checks.append(Check("lua", "fail", f"EVAL failed: {exc}"))

    if not version:
        checks.append(Check("streams", "skip", "server version unknown"))
    elif version >= MIN_STREAMS_VERSION:
        checks.append(Check("streams", "ok", "supported (Redis >= 5)"))
    else:
        checks.append(Check("streams", "fail", f"Redis {version_text} has no Streams (needs >= 5)"))
    return checks


async def topology_check(client: RedisClient) -> Check:
    """What the client reaches (``docs/scaling.md``).

    One server, a Cluster with N primaries, or a Sentinel service with its current primary.
    """
    try:
        topology = await describe_topology(client)
    except (redis_errors.RedisError, redis_errors.RedisClusterException, OSError) as exc:
        return Check("topology", "fail", f"not read: {type(exc).__name__}: {exc}")
    # A plain URL to a Cluster node works for the keys of that node only: MOVED elsewhere.
    status: Status = "warn" if topology.cluster_node else "ok"
    return Check("topology", status, topology.describe())


async def store_checks(client: RedisClient | None, settings: CoordinationSettings) -> list[Check]:
    """The configured message store (reachable?) and the prefix's store marker.

    A prefix whose coordinators record to a store is marked in Redis
    (``redis/store_marker.py``); settings without a store on such a prefix build
    coordinators that settle messages the store never hears of: a warning.
    """
    checks: list[Check] = []
    dsn = settings.postgres_dsn
    if dsn is not None:
        where = f"{redact_url(dsn)} (schema {settings.postgres_schema!r}, "
        where += f"durability {settings.store_durability})"
        try:
            store = settings.build_store()
            try:
                await connect_store(store)
            finally:
                if store is not None:
                    await store.aclose()
            checks.append(Check("message store", "ok", where))
        except (CoordinationError, OSError) as exc:
            checks.append(Check("message store", "fail", f"{where}: {exc}"))
    marked: str | None = None
    if client is not None:
        try:
            marked = await read_store_marker(client, KeySpace(settings.key_prefix))
        except (redis_errors.RedisError, redis_errors.RedisClusterException, OSError) as exc:
            checks.append(Check("store marker", "warn", f"not read: {exc}", required=False))
            return checks
    if marked is not None and dsn is None:
        checks.append(
            Check(
                "store marker",
                "warn",
                f"prefix {settings.key_prefix!r} is recorded to a store ({marked}) but "
                "TTA_COORD_POSTGRES_DSN is not set here: workers and commands run with these "
                "settings settle messages the store never hears of (a restore would enqueue "
                "them again). Set it, or delete the marker key if the store was retired",
                required=False,
            )
        )
    elif marked is not None:
        checks.append(Check("store marker", "ok", f"recorded to {marked}", required=False))
    elif dsn is None:
        checks.append(Check("message store", "skip", "none (TTA_COORD_POSTGRES_DSN not set)"))
    return checks


def doctor(ctx: typer.Context, as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """Check the Redis server (connection, topology, version, Lua, Streams), store, extras.

    The topology line says single server, cluster with N primaries, or the Sentinel
    service and its current primary.

    With TTA_COORD_POSTGRES_DSN the store must be reachable; a prefix recorded to a store
    by other processes while these settings have none is a warning.

    The optional parts are those of ``tta_agent_coordination.features()``.

    Exits with 1 when a required check fails.
    """
    state = get_state(ctx)

    async def work(settings: CoordinationSettings) -> list[Check]:
        checks = [Check("settings", "ok", f"key prefix {settings.key_prefix!r}")]
        if settings.redis_url is None:
            checks.append(Check("connect", "fail", settings_hint()))
            return checks
        client = settings.redis_client(decode_responses=True)
        try:
            checks += await server_checks(client, settings.redacted_url or "")
            connected = any(c.name == "connect" and c.status == "ok" for c in checks)
            if connected:
                checks.append(await topology_check(client))
            checks += await store_checks(client if connected else None, settings)
        finally:
            await client.aclose()
        return checks

    checks = run_async(state, work) + optional_parts()
    failed = [c for c in checks if c.required and c.status == "fail"]
    if as_json:
        print_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        table = Table(title="tta-coord doctor")
        for column in ("check", "status", "detail"):
            table.add_column(column)
        style = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
        for check in checks:
            table.add_row(
                check.name,
                f"[{style[check.status]}]{check.status}[/{style[check.status]}]",
                escape(check.detail),
            )
        console = out_console()
        console.print(table)
        if failed:
            console.print(f"[bold red]{len(failed)} required check(s) failed.[/bold red]")
        else:
            console.print("[green]All required checks passed.[/green]")
    if failed:
        raise typer.Exit(EXIT_FAILURE)


def settings_hint() -> str:
    """What to do when no Redis URL is configured."""
    return "no Redis server given: set TTA_COORD_REDIS_URL or pass --redis-url"
