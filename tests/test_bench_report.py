"""The peer benchmark's pure logic (issue 20): summaries, targets and the rendered table.

``scripts/bench/report.py`` imports nothing outside the standard library, so these tests
run on made-up results without Redis or the peers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "bench"))

import report  # pyright: ignore[reportMissingImports]


def _s(median: float, spread: float = 0.0) -> dict[str, float]:
    return {"median": median, "min": median - spread, "max": median + spread}


def _system(**metrics: float | None) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(report.METRICS)
    out.update({k: (None if v is None else _s(v)) for k, v in metrics.items()})
    out["residue"] = {"keys": 1, "entries": 0, "bytes": 0, "top": {}}
    return out


def _data(systems: dict[str, dict[str, Any]], payload: int = 100) -> dict[str, Any]:
    return {
        "date": "2026-12-04 03:00",
        "quick": False,
        "n": 1000,
        "reps": 3,
        "lat_n": 100,
        "lat_spacing_ms": 2,
        "payload_bytes": payload,
        "machine": {
            "load_start": (1.0, 1.0, 1.0),
            "cpu": "2 x test",
            "os": "linux",
            "python": "3.11",
            "redis": "7",
        },
        "load_end": (1.0, 1.0, 1.0),
        "versions": {"redis": "6"},
        "systems": systems,
        "scaling": {},
        "skipped": {},
    }


def _by_text(items: list[Any]) -> dict[str, Any]:
    return {t.text.split(" (")[0]: t for t in items}


def _full_run(**ours_default: float) -> dict[str, Any]:
    base = {
        "enqueue_single": 9_000.0,
        "e2e": 10_000.0,
        "e2e_single": 3_000.0,
        "p50_ms": 0.4,
        "p99_ms": 0.9,
        "rpc_p50_ms": 0.5,
        "mem_per_msg": 300.0,
        "cpu_worker_per_1k": 0.02,
    }
    ours = base | ours_default
    return _data(
        {
            "ours-default": _system(**ours),
            "ours-tuned": _system(
                enqueue_single=ours["enqueue_single"],  # one send path for both rows
                e2e=10_500.0,
                e2e_single=3_100.0,
                p50_ms=0.3,
                p99_ms=0.8,
                rpc_p50_ms=0.5,
                mem_per_msg=300.0,
                cpu_worker_per_1k=0.02,
            ),
            "taskiq": _system(enqueue_single=5_000.0, e2e=3_000.0, p50_ms=0.5),
            "faststream": _system(enqueue_single=8_000.0, e2e=3_300.0, p50_ms=0.45, rpc_p50_ms=1.0),
            "raw-single": _system(enqueue_single=10_000.0, p50_ms=0.25, rpc_p50_ms=0.3),
            "raw-pipelined": _system(e2e=19_000.0, cpu_worker_per_1k=0.015),
            "raw-async": _system(enqueue_single=6_000.0, rpc_p50_ms=0.4),
        }
    )


def test_summary_is_median_min_max_over_the_repetitions_that_measured_it() -> None:
    reps = [{"e2e": 3.0}, {"e2e": 1.0}, {"e2e": 2.0, "rpc_p50_ms": 5.0}]
    assert report.summary(reps, "e2e") == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert report.summary(reps, "rpc_p50_ms") == {"median": 5.0, "min": 5.0, "max": 5.0}
    assert report.summary(reps, "absent") is None


def test_cell_shows_the_spread_only_when_there_is_one() -> None:
    assert report.cell(None) == "-"
    assert report.cell(_s(1234.4)) == "1,234"
    assert report.cell({"median": 1.5, "min": 1.25, "max": 2.0}, 2) == "1.50 (1.25-2.00)"


def test_every_target_is_met_on_a_run_that_meets_them() -> None:
    items = report.targets(_full_run())
    verdicts = {t.text: t.verdict for t in items}
    info = {t.text: t.measured for t in items if t.verdict == "info"}
    assert info == {
        "single `send_message` compared with raw `XADD` on redis-py's asyncio client": "150%",
        "`request()` p50 compared with the raw round trip on redis-py's asyncio client": "1.25x",
        "`request()` p50 compared with FastStream's Redis RPC": "0.50x (0.50 ms vs 1.00 ms)",
    }
    for text in info:
        verdicts.pop(text)
    assert verdicts.pop("issue 8: batched end-to-end >= 3x the fastest peer") == "met"
    assert set(verdicts.values()) == {"met"}, verdicts


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ({"enqueue_single": 8_000.0}, "single `send_message` >= 85% of raw one-at-a-time `XADD`"),
        ({"enqueue_single": 8_000.0}, "single `send_message` ahead of every peer's single enqueue"),
        ({"p50_ms": 0.45}, "latency p50 (defaults) below every peer's p50"),
        ({"p50_ms": 0.51}, "latency p50 (defaults) <= 2x the raw floor's"),
        ({"p99_ms": 1.01}, "latency p99 (defaults) <= 1 ms"),
        ({"rpc_p50_ms": 0.61}, "`request()` p50 <= 2x one raw round trip"),
        ({"e2e": 9_000.0}, "defaults >= 90% of the tuned end-to-end rate, batched"),
        ({"e2e_single": 2_700.0}, "defaults >= 90% of the tuned end-to-end rate, single sends"),
    ],
)
def test_a_target_is_missed_just_past_its_threshold(change: dict[str, float], target: str) -> None:
    items = report.targets(_full_run(**change))
    hits = [t for t in items if t.text.startswith(target)]
    assert len(hits) == 1, [t.text for t in items]
    assert hits[0].verdict == "missed", hits[0]


def test_thresholds_are_inclusive_where_the_issue_says_at_most() -> None:
    # 2x the floor's p50 exactly, p99 exactly 1 ms, memory exactly payload + 250 B.
    data = _full_run(p50_ms=0.5, p99_ms=1.0, mem_per_msg=350.0)
    data["systems"]["ours-tuned"]["mem_per_msg"] = _s(350.0)
    data["systems"]["taskiq"]["p50_ms"] = _s(0.6)
    data["systems"]["faststream"]["p50_ms"] = _s(0.6)
    v = {t.text: t.verdict for t in report.targets(data)}
    assert v["latency p50 (defaults) <= 2x the raw floor's"] == "met"
    assert v["latency p99 (defaults) <= 1 ms"] == "met"
    assert v["Redis memory per queued message <= payload + 250 B (350 B)"] == "met"
    data["systems"]["ours-default"]["mem_per_msg"] = _s(351.0)
    data["systems"]["ours-tuned"]["mem_per_msg"] = _s(351.0)
    v = {t.text: t.verdict for t in report.targets(data)}
    assert v["Redis memory per queued message <= payload + 250 B (350 B)"] == "missed"


def test_batched_and_cpu_targets_use_the_better_of_our_rows_and_the_pipelined_floor() -> None:
    data = _full_run(e2e=5_000.0, cpu_worker_per_1k=0.5)
    v = {t.text: t for t in report.targets(data)}
    # ours-tuned: 10,500 / 19,000 = 55%; CPU 0.02 / 0.015 = 1.33x.
    batched = v["batched end-to-end >= 50% of the pipelined raw floor"]
    assert (batched.verdict, batched.measured) == ("met", "55%")
    cpu = v["worker CPU per 1,000 messages <= 1.5x the raw floor's worker (batched phase)"]
    assert (cpu.verdict, cpu.measured) == ("met", "1.33x")
    data["systems"]["raw-pipelined"]["e2e"] = _s(21_001.0)
    v = {t.text: t for t in report.targets(data)}
    assert v["batched end-to-end >= 50% of the pipelined raw floor"].verdict == "missed"


def test_targets_are_not_measured_when_a_needed_system_is_missing() -> None:
    data = _full_run()
    for name in ("raw-single", "raw-async", "faststream", "taskiq"):
        del data["systems"][name]
    v = {t.text: t.verdict for t in report.targets(data)}
    assert v["single `send_message` >= 85% of raw one-at-a-time `XADD` with JSON"] == (
        "not measured"
    )
    assert v["single `send_message` ahead of every peer's single enqueue"] == "not measured"
    assert v["latency p50 (defaults) below every peer's p50"] == "not measured"
    assert v["`request()` p50 compared with FastStream's Redis RPC"] == "not measured"
    assert v["single `send_message` compared with raw `XADD` on redis-py's asyncio client"] == (
        "not measured"
    )
    # The ones that need only ours and the pipelined floor are still judged.
    assert v["batched end-to-end >= 50% of the pipelined raw floor"] == "met"


def test_a_peer_without_a_phase_is_left_out_of_that_comparison() -> None:
    data = _full_run()
    data["systems"]["taskiq"]["p50_ms"] = None  # e.g. a peer whose latency phase failed
    data["systems"]["faststream"]["p50_ms"] = _s(0.35)
    v = {t.text: t for t in report.targets(data)}
    target = v["latency p50 (defaults) below every peer's p50"]
    assert target.verdict == "missed"
    assert "FastStream" in target.measured


def test_render_has_every_system_row_the_targets_and_the_skipped_peers() -> None:
    data = _full_run()
    data["skipped"] = {"bullmq": "ModuleNotFoundError: No module named 'bullmq'"}
    text = report.render(data)
    for name in data["systems"]:
        assert f"| {report.SYSTEMS[name]['label']}" in text, name
    assert "| raw streams, pipelined (floor) |" in text
    assert "| batched end-to-end >= 50% of the pipelined raw floor | 55% | **met** |" in text
    assert "- BullMQ (Python): ModuleNotFoundError: No module named 'bullmq'" in text
    header = next(line for line in text.splitlines() if line.startswith("| System |"))
    separator = text.splitlines()[text.splitlines().index(header) + 1]
    assert header.count("|") == separator.count("|")
    # A phase that does not apply renders as "-", not as zero.
    row = next(line for line in text.splitlines() if line.startswith("| taskiq"))
    assert "| - |" in row


def test_the_single_send_floor_is_the_better_of_the_two_raw_rows() -> None:
    data = _full_run()
    data["systems"]["raw-pipelined"]["enqueue_single"] = _s(12_000.0)
    v = {t.text: t for t in report.targets(data)}
    target = v["single `send_message` >= 85% of raw one-at-a-time `XADD` with JSON"]
    assert (target.verdict, target.measured) == ("missed", "75%")
