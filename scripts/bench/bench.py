"""Peer benchmark (issues 8, 20): our AgentWorker against arq, Dramatiq, Celery, taskiq,
SAQ, BullMQ, FastStream and plain redis-py streams, on the local real Redis, in one run.

Run through ``scripts/bench/run`` (which builds ``.bench-venv/`` with the peers). Each
system is measured by ``runner.py`` in its own process (its worker in further processes),
``--reps`` times; results go to ``scripts/bench/results/latest.json``, the table into
``docs/benchmarks.md`` (between the ``bench_peers`` markers) and the chart to
``docs/bench-peers.png``. ``--quick`` (small N, one repetition, ours and the floor only
unless ``--systems`` says otherwise) prints only. A system whose run fails is reported
as not run, with its error, instead of stopping the whole benchmark (unless ``--strict``).
The table and the targets are rendered by ``report.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import FLOOR, METRICS, ORDER, OURS, SYSTEMS, render, summary

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "bench-peers.png"
RESULTS = HERE / "results" / "latest.json"
START = "<!-- bench_peers:start -->"
END = "<!-- bench_peers:end -->"
DEFAULT_URL = "redis://127.0.0.1:6379/12"

SCALING: dict[str, dict[str, Any]] = {
    "1 worker process": {"workers": 1},
    "2 worker processes": {"workers": 2},
    "4 worker processes": {"workers": 4},
    "1 000 queues, 1 worker process": {"workers": 1, "queues": 1000},
}


def run_system(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(HERE / "runner.py"), json.dumps({"name": name, **spec})],
        cwd=HERE,
        capture_output=True,
        text=True,
        check=False,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    print(f"[bench] {name} done in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return json.loads(line.removeprefix("BENCH_RESULT "))


def residue_summary(reps: list[dict[str, Any]]) -> dict[str, Any] | None:
    values = [r["residue"] for r in reps if "residue" in r]
    if not values:
        return None
    return sorted(values, key=lambda v: v["entries"])[len(values) // 2]


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in [
        "tta-agent-coordination",
        "redis",
        "hiredis",
        "pydantic",
        "arq",
        "dramatiq",
        "celery",
        "kombu",
        "taskiq",
        "taskiq-redis",
        "saq",
        "bullmq",
        "faststream",
    ]:
        with contextlib.suppress(md.PackageNotFoundError):
            out[dist] = md.version(dist)
    return out


def machine(url: str) -> dict[str, Any]:
    import redis

    r = redis.Redis.from_url(url)
    info = r.info("server")
    r.close()
    cpu = "?"
    try:
        names = [
            x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("model name")
        ]
        cpu = f"{len(names)} x {names[0].split(':', 1)[1].strip()}" if names else cpu
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "os": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "redis": info.get("redis_version"),
        "load_start": os.getloadavg(),
    }


def chart(data: dict[str, Any]) -> None:
    import matplotlib  # pyright: ignore[reportMissingImports] - in .bench-venv only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pyright: ignore[reportMissingImports]

    res = data["systems"]
    names = [n for n in ORDER if n in res]
    labels = [SYSTEMS[n]["label"].replace(", ", ",\n").replace(" (", "\n(") for n in names]
    colors = [
        "#1f77b4" if n in OURS else "#7f7f7f" if n.startswith("raw") else "#ff7f0e" for n in names
    ]
    y = range(len(names))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 7))
    batched = [res[n]["e2e"]["median"] for n in names]
    single = [(res[n].get("e2e_single") or {"median": 0.0})["median"] for n in names]
    ax1.barh([i - 0.2 for i in y], batched, height=0.4, color=colors)
    ax1.barh([i + 0.2 for i in y], single, height=0.4, color=colors, alpha=0.45)
    ax1.set_yticks(list(y), labels)
    ax1.set_xscale("log")
    ax1.set_xlabel("end-to-end messages/s (log scale; dark batched sends, light single sends)")
    ax1.set_title(f"Throughput, N = {data['n']:,}, one worker process")
    ax1.invert_yaxis()
    for i, (a, b) in enumerate(zip(batched, single, strict=True)):
        ax1.text(a, i - 0.2, f" {a:,.0f}", va="center", fontsize=8)
        ax1.text(max(b, 1.0), i + 0.2, f" {b:,.0f}", va="center", fontsize=8)
    p50 = [res[n]["p50_ms"]["median"] for n in names]
    p99 = [res[n]["p99_ms"]["median"] for n in names]
    ax2.barh([i - 0.2 for i in y], p50, height=0.4, label="p50", color=colors)
    ax2.barh([i + 0.2 for i in y], p99, height=0.4, label="p99", color=colors, alpha=0.45)
    ax2.set_yticks(list(y), labels)
    ax2.set_xscale("log")
    ax2.set_xlabel("enqueue -> handler start, ms (log scale; dark p50, light p99)")
    ax2.set_title("Latency at low load")
    ax2.invert_yaxis()
    for i, (a, b) in enumerate(zip(p50, p99, strict=True)):
        ax2.text(b, i + 0.2, f" {a:.2f} / {b:.2f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(CHART, dpi=90)


def write_doc(table: str) -> None:
    text = DOC.read_text()
    block = f"{START}\n{table}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=2000, 1 repetition, print only")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--lat-n", type=int, default=None)
    parser.add_argument(
        "--systems", default=None, help="comma-separated subset of " + ",".join(SYSTEMS)
    )
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument(
        "--strict", action="store_true", help="stop at the first peer that fails to run"
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("TTA_COORD_BENCH_REDIS_URL", DEFAULT_URL)
    )
    parser.add_argument("--output", default=None, help="results JSON path")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile one send and one delivery (ours, raw) instead of the comparison",
    )
    args = parser.parse_args()
    if args.profile:
        import hotpath

        hotpath.main(
            args.redis_url,
            args.n or (500 if args.quick else 3_000),
            write=not args.quick,
            doc=DOC,
            results=HERE / "results" / "profile.json",
        )
        return
    quick = args.quick
    n = args.n or (2_000 if quick else 20_000)
    reps = args.reps or (1 if quick else 3)
    lat_n = args.lat_n or (200 if quick else 1_000)
    names = (
        args.systems.split(",")
        if args.systems
        else (["ours-tuned", FLOOR] if quick else list(SYSTEMS))
    )
    common = {"url": args.redis_url, "n": n, "reps": reps, "lat_n": lat_n}
    data: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "quick": quick,
        "n": n,
        "reps": reps,
        "lat_n": lat_n,
        "lat_spacing_ms": 2,
        "payload_bytes": 0,
        "machine": machine(args.redis_url),
        "versions": versions(),
        "systems": {},
        "scaling": {},
        "skipped": {},
    }
    from common import make_payload

    data["payload_bytes"] = len(json.dumps(make_payload(0)))
    for name in names:
        sysspec = SYSTEMS[name]
        try:
            out = run_system(
                name, {**common, "module": sysspec["module"], "variant": sysspec.get("variant", "")}
            )
        except RuntimeError as exc:
            if args.strict or name in OURS or name.startswith("raw"):
                raise
            why = str(exc).strip().splitlines()[-1][:300]
            print(f"[bench] {name} not run: {why}", file=sys.stderr)
            data["skipped"][name] = why
            continue
        reps_out = out["reps"]
        data["systems"][name] = {key: summary(reps_out, key) for key in METRICS} | {
            "residue": residue_summary(reps_out),
            "raw": reps_out,
        }
    if not quick and not args.no_scaling:
        for label, extra in SCALING.items():
            out = run_system(
                f"scale-{label}",
                {**common, "module": "ours", "variant": "tuned", "e2e_only": True, **extra},
            )
            data["scaling"][label] = {
                k: summary(out["reps"], k)
                for k in ["e2e", "cpu_worker_per_1k", "cpu_producer_per_1k"]
            }
    data["load_end"] = os.getloadavg()
    table = render(data)
    print(table)
    path = Path(args.output) if args.output else (None if quick else RESULTS)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1, default=str))
    if not quick:
        write_doc(table)
        chart(data)


if __name__ == "__main__":
    main()
