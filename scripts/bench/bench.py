"""Peer benchmark (issue 8): our AgentWorker against arq, Dramatiq, Celery, taskiq, SAQ
and plain redis-py streams, on the local real Redis, in one run.

Run through ``scripts/bench/run`` (which builds ``.bench-venv/`` with the peers). Each
system is measured by ``runner.py`` in its own process (its worker in further processes),
``--reps`` times; results go to ``scripts/bench/results/latest.json``, the table into
``docs/benchmarks.md`` (between the ``bench_peers`` markers) and the chart to
``docs/bench-peers.png``. ``--quick`` (small N, one repetition, ours and the floor only
unless ``--systems`` says otherwise) prints only.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata as md
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "bench-peers.png"
RESULTS = HERE / "results" / "latest.json"
START = "<!-- bench_peers:start -->"
END = "<!-- bench_peers:end -->"
DEFAULT_URL = "redis://127.0.0.1:6379/12"

SYSTEMS: dict[str, dict[str, Any]] = {
    "ours-default": {"module": "ours", "variant": "default", "label": "ours, AgentWorker defaults"},
    "ours-tuned": {"module": "ours", "variant": "tuned", "label": "ours, batching tuned"},
    "arq": {"module": "arq_sys", "label": "arq", "dist": "arq"},
    "dramatiq": {"module": "dramatiq_sys", "label": "Dramatiq (Redis)", "dist": "dramatiq"},
    "celery": {"module": "celery_sys", "label": "Celery (Redis)", "dist": "celery"},
    "taskiq": {
        "module": "taskiq_sys",
        "label": "taskiq (RedisStreamBroker)",
        "dist": "taskiq-redis",
    },
    "saq": {"module": "saq_sys", "label": "SAQ", "dist": "saq"},
    "raw-single": {"module": "raw", "variant": "single", "label": "raw streams, one at a time"},
    "raw-pipelined": {"module": "raw", "variant": "pipelined", "label": "raw streams, pipelined"},
}
PEERS = ["arq", "dramatiq", "celery", "taskiq", "saq"]
OURS = ["ours-default", "ours-tuned"]
FLOOR = "raw-pipelined"
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


def summary(reps: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    values = [r[key] for r in reps if key in r]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


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


# --- report ---------------------------------------------------------------------------


def _f(v: float, digits: int = 0) -> str:
    return f"{v:,.{digits}f}"


def cell(s: dict[str, float] | None, digits: int = 0) -> str:
    if s is None:
        return "-"
    if s["min"] == s["max"]:
        return _f(s["median"], digits)
    return f"{_f(s['median'], digits)} ({_f(s['min'], digits)}-{_f(s['max'], digits)})"


def render(data: dict[str, Any]) -> str:
    res = data["systems"]
    payload = data["payload_bytes"]
    peers = [p for p in PEERS if p in res]
    fastest = max(peers, key=lambda p: res[p]["e2e"]["median"]) if peers else None
    floor = res.get(FLOOR)
    lines = [
        f"Last run: {data['date']} UTC, `scripts/bench/run{' --quick' if data['quick'] else ''}`; "
        f"N = {data['n']:,} messages per phase, {data['reps']} repetition(s), median "
        f"(min-max); {payload} B JSON payload; latency over {data['lat_n']:,} messages sent "
        f"one at a time, {data['lat_spacing_ms']} ms apart. Load average (1/5/15 min) at start "
        f"{'/'.join(f'{x:.2f}' for x in data['machine']['load_start'])}, at end "
        f"{'/'.join(f'{x:.2f}' for x in data['load_end'])}.",
        "",
        "| System | Enqueue, single msg/s | Enqueue, batched msg/s | End-to-end msg/s "
        "| vs fastest peer | vs floor | p50 ms | p99 ms | CPU s/1k producer | CPU s/1k worker "
        "| Redis B/queued msg | Residue entries (keys) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in [*OURS, *PEERS, "raw-single", FLOOR]:
        if name not in res:
            continue
        s = res[name]
        e2e = s["e2e"]["median"]
        vs_peer = f"{e2e / res[fastest]['e2e']['median']:.2f}x" if fastest else "-"
        vs_floor = f"{e2e / floor['e2e']['median']:.0%}" if floor else "-"
        rz = s["residue"]
        label = SYSTEMS[name]["label"]
        if name == fastest:
            label += " (fastest peer)"
        if name == FLOOR:
            label += " (floor)"
        lines.append(
            f"| {label} | {cell(s['enqueue_single'])} | {cell(s['enqueue_batch'])} "
            f"| {cell(s['e2e'])} | {vs_peer} | {vs_floor} | {cell(s['p50_ms'], 2)} "
            f"| {cell(s['p99_ms'], 2)} | {cell(s['cpu_producer_per_1k'], 3)} "
            f"| {cell(s['cpu_worker_per_1k'], 3)} | {cell(s['mem_per_msg'])} "
            f"| {_f(rz['entries']) if rz else '-'} ({rz['keys'] if rz else '-'}) |"
        )
    lines += ["", "Residue, by key (median repetition):", ""]
    for name in [*OURS, *PEERS, "raw-single", FLOOR]:
        if name in res and res[name]["residue"]:
            top = res[name]["residue"]["top"]
            what = ", ".join(f"`{k}` {v:,}" for k, v in top.items()) or "nothing"
            lines.append(f"- {SYSTEMS[name]['label']}: {what}")
    if data.get("scaling"):
        lines += [
            "",
            "Scaling of ours (batching tuned), end-to-end only:",
            "",
            "| Setup | End-to-end msg/s | CPU s/1k worker (all processes) | CPU s/1k producer |",
            "|---|---:|---:|---:|",
        ]
        for label, s in data["scaling"].items():
            lines.append(
                f"| {label} | {cell(s['e2e'])} | {cell(s['cpu_worker_per_1k'], 3)} "
                f"| {cell(s['cpu_producer_per_1k'], 3)} |"
            )
    if fastest and floor:
        lines += ["", "Targets (issue 8), judged on the best of our two rows:", ""]
        best = max((o for o in OURS if o in res), key=lambda o: res[o]["e2e"]["median"])
        ours = res[best]
        fp = res[fastest]
        checks = [
            (
                f"end-to-end >= 3x the fastest peer ({SYSTEMS[fastest]['label']})",
                ours["e2e"]["median"] / fp["e2e"]["median"],
                3.0,
                "x",
            ),
            (
                "end-to-end >= 40% of the pipelined floor",
                ours["e2e"]["median"] / floor["e2e"]["median"],
                0.40,
                "%",
            ),
        ]
        for text, value, goal, unit in checks:
            shown = f"{value:.2f}x" if unit == "x" else f"{value:.0%}"
            lines.append(f"- {text}: {shown} - {'**met**' if value >= goal else '**missed**'}")
        for text, value, goal in [
            (
                f"p50 below the fastest peer's ({fp['p50_ms']['median']:.2f} ms)",
                min(res[o]["p50_ms"]["median"] for o in OURS if o in res),
                fp["p50_ms"]["median"],
            ),
            ("p99 <= 2 ms", min(res[o]["p99_ms"]["median"] for o in OURS if o in res), 2.0),
            (
                f"memory per queued message <= payload + 300 B ({payload + 300} B)",
                min(res[o]["mem_per_msg"]["median"] for o in OURS if o in res),
                payload + 300,
            ),
        ]:
            ok = value < goal if text.startswith("p50") else value <= goal
            lines.append(f"- {text}: {value:,.2f} - {'**met**' if ok else '**missed**'}")
        lines.append(
            "- zero residue after ack: "
            + ", ".join(f"{o}: {res[o]['residue']['entries']:,} entries" for o in OURS if o in res)
            + " (see the residue notes below)"
        )
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + "."]
    m = data["machine"]
    lines.append(
        f"Machine: {m['cpu']}; {m['os']}; CPython {m['python']}; Redis {m['redis']} (local, "
        "loopback TCP)."
    )
    return "\n".join(lines)


def chart(data: dict[str, Any]) -> None:
    import matplotlib  # pyright: ignore[reportMissingImports] - in .bench-venv only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pyright: ignore[reportMissingImports]

    res = data["systems"]
    names = [n for n in [*OURS, *PEERS, "raw-single", FLOOR] if n in res]
    labels = [SYSTEMS[n]["label"].replace(", ", ",\n").replace(" (", "\n(") for n in names]
    colors = [
        "#1f77b4" if n in OURS else "#7f7f7f" if n.startswith("raw") else "#ff7f0e" for n in names
    ]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 6))
    med = [res[n]["e2e"]["median"] for n in names]
    err = [
        [m - res[n]["e2e"]["min"] for n, m in zip(names, med, strict=False)],
        [res[n]["e2e"]["max"] - m for n, m in zip(names, med, strict=False)],
    ]
    ax1.barh(labels, med, xerr=err, color=colors)
    ax1.set_xscale("log")
    ax1.set_xlabel("end-to-end messages/s (log scale; median, min-max)")
    ax1.set_title(f"Throughput, N = {data['n']:,}, one worker process")
    ax1.invert_yaxis()
    for i, m in enumerate(med):
        ax1.text(m, i, f" {m:,.0f}", va="center", fontsize=8)
    p50 = [res[n]["p50_ms"]["median"] for n in names]
    p99 = [res[n]["p99_ms"]["median"] for n in names]
    y = range(len(names))
    ax2.barh([i - 0.2 for i in y], p50, height=0.4, label="p50", color=colors)
    ax2.barh([i + 0.2 for i in y], p99, height=0.4, label="p99", color=colors, alpha=0.45)
    ax2.set_yticks(list(y), labels)
    ax2.set_xscale("log")
    ax2.set_xlabel("enqueue -> handler start, ms (log scale; dark p50, light p99)")
    ax2.set_title("Latency at low load")
    ax2.invert_yaxis()
    for i, (a, b) in enumerate(zip(p50, p99, strict=False)):
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
        "--redis-url", default=os.environ.get("TTA_COORD_BENCH_REDIS_URL", DEFAULT_URL)
    )
    parser.add_argument("--output", default=None, help="results JSON path")
    args = parser.parse_args()
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
    }
    sys.path.insert(0, str(HERE))
    from common import make_payload

    data["payload_bytes"] = len(json.dumps(make_payload(0)))
    for name in names:
        sysspec = SYSTEMS[name]
        out = run_system(
            name, {**common, "module": sysspec["module"], "variant": sysspec.get("variant", "")}
        )
        reps_out = out["reps"]
        data["systems"][name] = {
            key: summary(reps_out, key)
            for key in [
                "enqueue_single",
                "enqueue_batch",
                "e2e",
                "enqueue_under_load",
                "p50_ms",
                "p99_ms",
                "cpu_producer_per_1k",
                "cpu_worker_per_1k",
                "mem_per_msg",
            ]
        } | {"residue": residue_summary(reps_out), "raw": reps_out}
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
