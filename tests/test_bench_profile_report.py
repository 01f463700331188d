"""The hot-path profile's pure summary (issue 20): areas, shares, top functions, Markdown."""

from __future__ import annotations

import cProfile
import pstats
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "bench"))

import profile_report as pr  # pyright: ignore[reportMissingImports]

SITE = "/venv/lib/python3.11/site-packages"
STDLIB = "/usr/lib/python3.11"


def _row(file: str, func: str, tottime: float, calls: int = 1, line: int = 1) -> pr.Row:
    return pr.Row(file, line, func, calls, tottime)


@pytest.mark.parametrize(
    ("file", "func", "expected"),
    [
        ("~", "<method 'poll' of 'select.epoll' objects>", pr.WAIT),
        ("~", "<method 'sendall' of '_socket.socket' objects>", pr.WAIT),
        ("~", "<method 'recv_into' of '_socket.socket' objects>", pr.WAIT),
        (f"{SITE}/tta_agent_coordination/redis/codec.py", "decode", "ours: redis/codec"),
        (f"{SITE}/redis/asyncio/connection.py", "pack_command", "redis-py"),
        (f"{SITE}/pydantic/main.py", "model_validate", "pydantic"),
        ("~", "<method 'validate_json' of 'pydantic_core._pydantic_core.X' objects>", "pydantic"),
        (f"{STDLIB}/asyncio/base_events.py", "_run_once", "asyncio"),
        (f"{STDLIB}/json/encoder.py", "iterencode", "json"),
        ("~", "<built-in method builtins.isinstance>", "builtins"),
        ("/work/x/scripts/bench/common.py", "record", "benchmark harness"),
        (f"{STDLIB}/enum.py", "__call__", "other"),
    ],
)
def test_area_groups_a_function_by_where_it_lives(file: str, func: str, expected: str) -> None:
    assert pr.area(_row(file, func, 1.0)) == expected


def test_label_is_short_for_files_and_verbatim_for_builtins() -> None:
    assert pr.label(_row("~", "<built-in method time.monotonic>", 1.0)) == (
        "<built-in method time.monotonic>"
    )
    row = _row(f"{SITE}/tta_agent_coordination/runtime/acks.py", "flush", 1.0, line=42)
    assert pr.label(row) == "runtime/acks.py:42(flush)"
    assert pr.label(_row(f"{STDLIB}/asyncio/events.py", "run", 1.0, line=7)) == (
        "asyncio/events.py:7(run)"
    )
    row = _row("/work/x/scripts/bench/systems/raw.py", "consume", 1.0, line=57)
    assert pr.label(row) == "bench/systems/raw.py:57(consume)"


def test_summarise_gives_per_operation_times_shares_and_the_top_functions() -> None:
    rows = [
        _row("~", "<method 'poll' of 'select.epoll' objects>", 0.006, calls=20),
        _row(f"{SITE}/redis/connection.py", "pack", 0.003, calls=30),
        _row(f"{SITE}/redis/client.py", "execute", 0.001, calls=10),
    ]
    s = pr.summarise("case", rows, n=10, wall_s=0.005, top=2)
    assert s.wall_us_per_op == pytest.approx(500.0)
    assert s.profiled_us_per_op == pytest.approx(1000.0)
    assert [a.name for a in s.areas] == [pr.WAIT, "redis-py"]
    wait, redis_py = s.areas
    assert (wait.us_per_op, wait.share, wait.calls_per_op) == pytest.approx((600.0, 0.6, 2.0))
    assert (redis_py.us_per_op, redis_py.share, redis_py.calls_per_op) == pytest.approx(
        (400.0, 0.4, 4.0)
    )
    assert [t.name for t in s.top] == [
        "<method 'poll' of 'select.epoll' objects>",
        "redis/connection.py:1(pack)",
    ]
    assert sum(a.share for a in s.areas) == pytest.approx(1.0)


@pytest.mark.parametrize(("n", "rows"), [(0, [_row("~", "x", 1.0)]), (5, [_row("~", "x", 0.0)])])
def test_summarise_refuses_an_empty_or_zero_operation_profile(n: int, rows: list[pr.Row]) -> None:
    with pytest.raises(ValueError, match=r"positive|no time"):
        pr.summarise("case", rows, n=n, wall_s=1.0)


def test_rows_from_a_real_cprofile_run() -> None:
    def work() -> int:
        return sum(i * i for i in range(2000))

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(5):
        work()
    prof.disable()
    rows = pr.rows_from_stats(pstats.Stats(prof).stats)  # pyright: ignore[reportAttributeAccessIssue]
    mine = [r for r in rows if r.func == "work"]
    assert len(mine) == 1
    assert mine[0].calls == 5
    s = pr.summarise("work", rows, n=5, wall_s=0.001)
    assert s.profiled_us_per_op > 0


def test_render_folds_the_small_areas_and_escapes_pipes() -> None:
    rows = [
        _row(f"{SITE}/redis/connection.py", "pack", 0.98),
        _row(f"{STDLIB}/json/encoder.py", "a|b", 0.01),
        _row(f"{STDLIB}/enum.py", "c", 0.005),
    ]
    text = pr.render([pr.summarise("ours: send", rows, n=1, wall_s=0.5)], "Header.")
    assert text.startswith("Header.\n")
    assert "**ours: send**: 500,000.0 µs per operation without the profiler" in text
    assert "| redis-py | 980,000.0 | 98% | 1.0 |" in text
    assert "| json | 10,000.0 | 1% | 1.0 |" in text
    assert "| 1 more areas, < 1% each |" in text
    assert "`json/encoder.py:1(a/b)`" in text
