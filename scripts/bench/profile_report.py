"""Summaries of cProfile data for the hot-path profile (issue 20); pure, no Redis.

``hotpath.py`` profiles N operations and hands the rows of ``pstats`` here. Each
function's own time is shown per operation as measured under the profiler, with its
share of the profiled total. The profiler's overhead is per Python call, so it inflates
many small Python functions more than one slow syscall; the wall time per operation
without the profiler is given next to it for scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WAIT = "Redis round trips (socket send/recv, epoll)"
"""Time in the socket syscalls: on loopback, a send wakes Redis and (on a busy 2-core box)
often waits for its turn, so the round trip (Redis executing, the other processes' turns
on the CPU) lands in the send, the receive or the event loop's poll."""

_WAIT_FUNCS = (
    "'poll' of 'select.epoll'",
    "'select' of 'select.epoll'",
    "'recv_into' of '_socket.socket'",
    "'recv' of '_socket.socket'",
    "'sendall' of '_socket.socket'",
    "'send' of '_socket.socket'",
)


@dataclass(frozen=True)
class Row:
    """One function of a ``pstats`` table.

    Attributes:
        file: its file (``~`` for built-ins).
        line: its first line.
        func: its name (built-ins: ``<method 'x' of 'y' objects>`` or ``<built-in ...>``).
        calls: primitive calls.
        tottime: seconds spent in it, not in its callees.
    """

    file: str
    line: int
    func: str
    calls: int
    tottime: float


def rows_from_stats(stats: dict[Any, Any]) -> list[Row]:
    """``pstats.Stats(...).stats`` (``{(file, line, func): (cc, nc, tt, ct, callers)}``)."""
    return [
        Row(f, ln, fn, int(cc), float(tt)) for (f, ln, fn), (cc, _nc, tt, _ct, _c) in stats.items()
    ]


def area(row: Row) -> str:
    """Which part of the stack a function belongs to (the groups of the summary)."""
    path = row.file.replace("\\", "/")
    if any(w in row.func for w in _WAIT_FUNCS):
        return WAIT
    if "/tta_agent_coordination/" in path:
        rel = path.split("/tta_agent_coordination/", 1)[1]
        return "ours: " + rel.removesuffix(".py")
    for marker, name in [
        ("/redis/", "redis-py"),
        ("/hiredis", "redis-py"),
        ("/pydantic", "pydantic"),
        ("/pydantic_core", "pydantic"),
        ("/asyncio/", "asyncio"),
        ("/json/", "json"),
        ("/tenacity/", "tenacity"),
        ("/structlog/", "structlog"),
        ("/uuid.py", "uuid"),
        ("/datetime.py", "datetime"),
    ]:
        if marker in path:
            return name
    if path == "~":
        for marker, name in [
            ("pydantic_core", "pydantic"),
            ("hiredis", "redis-py"),
            ("_json", "json"),
            ("json", "json"),
            ("_asyncio", "asyncio"),
            ("select", "asyncio"),
        ]:
            if marker in row.func:
                return name
        return "builtins"
    if "/scripts/bench/" in path:
        return "benchmark harness"
    return "other"


def label(row: Row) -> str:
    """A short name: ``module.py:line(func)`` or the built-in's own name."""
    if row.file == "~":
        return row.func
    tail = row.file.replace("\\", "/")
    for marker in ("/tta_agent_coordination/", "/site-packages/", "/lib/python3.", "/scripts/"):
        if marker in tail:
            tail = tail.split(marker, 1)[1]
            if marker == "/lib/python3.":
                tail = tail.split("/", 1)[1] if "/" in tail else tail
            break
    return f"{tail}:{row.line}({row.func})"


@dataclass(frozen=True)
class Share:
    """Own time per operation under the profiler, its share of the total, calls per op."""

    name: str
    us_per_op: float
    share: float
    calls_per_op: float


@dataclass(frozen=True)
class Summary:
    """One profiled case: its wall time per operation, by area and by top function."""

    case: str
    n: int
    wall_us_per_op: float
    profiled_us_per_op: float
    areas: list[Share]
    top: list[Share]


def summarise(case: str, rows: list[Row], n: int, wall_s: float, top: int = 12) -> Summary:
    """Group the profiled time of ``n`` operations by area and top function.

    ``wall_s`` is the time of the same ``n`` operations without the profiler.

    Raises:
        ValueError: ``n`` is not positive or the profile recorded no time.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    total = sum(r.tottime for r in rows)
    if total <= 0:
        raise ValueError(f"{case}: the profile recorded no time")
    by_area: dict[str, tuple[float, int]] = {}
    for r in rows:
        t, c = by_area.get(area(r), (0.0, 0))
        by_area[area(r)] = (t + r.tottime, c + r.calls)
    areas = sorted(
        (Share(a, t / n * 1e6, t / total, c / n) for a, (t, c) in by_area.items()),
        key=lambda s: -s.us_per_op,
    )
    tops = sorted(rows, key=lambda r: -r.tottime)[:top]
    return Summary(
        case=case,
        n=n,
        wall_us_per_op=wall_s / n * 1e6,
        profiled_us_per_op=total / n * 1e6,
        areas=areas,
        top=[Share(label(r), r.tottime / n * 1e6, r.tottime / total, r.calls / n) for r in tops],
    )


def render(summaries: list[Summary], header: str) -> str:
    """The block between the ``bench_profile`` markers."""
    lines = [header, ""]
    for s in summaries:
        lines += [
            f"**{s.case}**: {s.wall_us_per_op:,.1f} µs per operation without the profiler, "
            f"{s.profiled_us_per_op:,.1f} µs under it; N = {s.n:,}.",
            "",
            "| Where (area) | µs/op (profiled) | share | calls/op |",
            "|---|---:|---:|---:|",
        ]
        shown = [a for a in s.areas if a.share >= 0.01]
        rest = [a for a in s.areas if a.share < 0.01]
        lines += [
            f"| {a.name} | {a.us_per_op:,.1f} | {a.share:.0%} | {a.calls_per_op:,.1f} |"
            for a in shown
        ]
        if rest:
            lines.append(
                f"| {len(rest)} more areas, < 1% each | {sum(a.us_per_op for a in rest):,.1f} "
                f"| {sum(a.share for a in rest):.0%} | {sum(a.calls_per_op for a in rest):,.1f} |"
            )
        lines += [
            "",
            "| Top functions (own time) | µs/op (profiled) | share | calls/op |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| `{t.name.replace('|', '/')}` | {t.us_per_op:,.1f} | {t.share:.0%} "
            f"| {t.calls_per_op:,.2f} |"
            for t in s.top
        ]
        lines.append("")
    return "\n".join(lines).rstrip()
