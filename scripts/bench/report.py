"""The peer benchmark's pure side: which systems, their summaries, the targets, the table.

Nothing here touches Redis or a peer, so ``tests/test_bench_report.py`` checks it on
made-up results. ``data`` is the dict ``bench.py`` writes to ``results/latest.json``:
``data["systems"][name][metric]`` is ``{"median", "min", "max"}`` (or None when the
phase does not apply to that system).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

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
    "bullmq": {"module": "bullmq_sys", "label": "BullMQ (Python)", "dist": "bullmq"},
    "faststream": {
        "module": "faststream_sys",
        "label": "FastStream (Redis Streams)",
        "dist": "faststream",
    },
    "raw-single": {"module": "raw", "variant": "single", "label": "raw streams, one at a time"},
    "raw-pipelined": {"module": "raw", "variant": "pipelined", "label": "raw streams, pipelined"},
    "raw-async": {"module": "raw_async", "label": "raw streams, asyncio client, one at a time"},
}
PEERS = ["arq", "dramatiq", "celery", "taskiq", "saq", "bullmq", "faststream"]
OURS = ["ours-default", "ours-tuned"]
FLOOR = "raw-pipelined"
"""The batched floor: pipelined XADD, XREADGROUP COUNT 100."""
SINGLE_FLOOR = "raw-single"
"""The one-at-a-time floor: one XADD per call, XREADGROUP COUNT 1, XADD + BLPOP round trip."""
ASYNC_FLOOR = "raw-async"
"""The one-at-a-time floor with ``redis.asyncio`` in the producer (the sync floor's worker)."""
ORDER = [*OURS, *PEERS, SINGLE_FLOOR, ASYNC_FLOOR, FLOOR]
METRICS = [
    "enqueue_single",
    "enqueue_batch",
    "e2e",
    "e2e_single",
    "enqueue_under_load",
    "p50_ms",
    "p99_ms",
    "rpc_p50_ms",
    "rpc_p99_ms",
    "cpu_producer_per_1k",
    "cpu_worker_per_1k",
    "mem_per_msg",
]
MEMORY_BUDGET_B = 250
"""Issue 20: Redis memory per queued message <= payload + this."""


def summary(reps: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    """Median, min and max of ``key`` over the repetitions that measured it (else None)."""
    values = [r[key] for r in reps if key in r]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _f(v: float, digits: int = 0) -> str:
    return f"{v:,.{digits}f}"


def cell(s: dict[str, float] | None, digits: int = 0) -> str:
    """``median (min-max)``, just the median when the spread is nil, ``-`` when unmeasured."""
    if s is None:
        return "-"
    if s["min"] == s["max"]:
        return _f(s["median"], digits)
    return f"{_f(s['median'], digits)} ({_f(s['min'], digits)}-{_f(s['max'], digits)})"


def median(data: dict[str, Any], system: str, metric: str) -> float | None:
    """The median of ``metric`` for ``system``; None when not run or not applicable."""
    s = data["systems"].get(system)
    if s is None or s.get(metric) is None:
        return None
    return float(s[metric]["median"])


@dataclass(frozen=True)
class Target:
    """One target of the issue, judged on one run.

    Attributes:
        text: the target, as the issue words it.
        measured: what was measured, in words and numbers.
        verdict: ``met``, ``missed``, ``info`` (a comparison without a threshold) or
            ``not measured`` (a system it needs was not in the run).
    """

    text: str
    measured: str
    verdict: str


def _judge(text: str, value: float | None, ok: bool, shown: str) -> Target:
    if value is None:
        return Target(text, "-", "not measured")
    return Target(text, shown, "met" if ok else "missed")


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def targets(data: dict[str, Any]) -> list[Target]:
    """The targets of issue 20 (and issue 8's peer ratio), met or missed in this run.

    Latency and request/reply are judged on ``ours-default`` (what users get without
    tuning); single send and memory per queued message (the send path is the same for
    both of our rows), batched throughput and worker CPU on the better of our two rows.
    Floors: ``raw-single`` for the one-at-a-time targets (for the single send, the
    better of the two raw rows, whose send is the same ``XADD``), ``raw-pipelined`` for
    the batched ones.
    """
    out: list[Target] = []
    payload = int(data["payload_bytes"])
    ours = [o for o in OURS if o in data["systems"]]
    peers = [p for p in PEERS if p in data["systems"]]

    def best(metric: str, *, low: bool = False) -> float | None:
        values = [v for o in ours if (v := median(data, o, metric)) is not None]
        if not values:
            return None
        return min(values) if low else max(values)

    def peer_values(metric: str) -> dict[str, float]:
        return {p: v for p in peers if (v := median(data, p, metric)) is not None}

    send = best("enqueue_single")
    # Both raw rows send with the same single XADD: the better of them is the floor.
    raw_sends = [
        v for f in (SINGLE_FLOOR, FLOOR) if (v := median(data, f, "enqueue_single")) is not None
    ]
    r = _ratio(send, max(raw_sends)) if raw_sends else None
    out.append(
        _judge(
            "single `send_message` >= 85% of raw one-at-a-time `XADD` with JSON",
            r,
            r is not None and r >= 0.85,
            f"{r:.0%}" if r is not None else "",
        )
    )
    r = _ratio(send, median(data, ASYNC_FLOOR, "enqueue_single"))
    out.append(
        Target(
            "single `send_message` compared with raw `XADD` on redis-py's asyncio client",
            f"{r:.0%}" if r is not None else "-",
            "info" if r is not None else "not measured",
        )
    )
    pe = peer_values("enqueue_single")
    top = max(pe, key=lambda p: pe[p]) if pe else None
    r = _ratio(send, pe[top]) if top else None
    out.append(
        _judge(
            "single `send_message` ahead of every peer's single enqueue",
            r,
            r is not None and r > 1.0,
            f"{r:.2f}x the fastest ({SYSTEMS[top]['label']}, {pe[top]:,.0f} msg/s)"
            if top and r is not None
            else "",
        )
    )
    p50 = median(data, "ours-default", "p50_ms")
    pp = peer_values("p50_ms")
    low = min(pp, key=lambda p: pp[p]) if pp else None
    out.append(
        _judge(
            "latency p50 (defaults) below every peer's p50",
            p50 if low else None,
            p50 is not None and low is not None and p50 < pp[low],
            f"{p50:.2f} ms vs {pp[low]:.2f} ms ({SYSTEMS[low]['label']})"
            if p50 is not None and low
            else "",
        )
    )
    r = _ratio(p50, median(data, SINGLE_FLOOR, "p50_ms"))
    out.append(
        _judge(
            "latency p50 (defaults) <= 2x the raw floor's",
            r,
            r is not None and r <= 2.0,
            f"{r:.2f}x ({p50:.2f} ms)" if r is not None and p50 is not None else "",
        )
    )
    p99 = median(data, "ours-default", "p99_ms")
    out.append(
        _judge(
            "latency p99 (defaults) <= 1 ms",
            p99,
            p99 is not None and p99 <= 1.0,
            f"{p99:.2f} ms" if p99 is not None else "",
        )
    )
    rpc = median(data, "ours-default", "rpc_p50_ms")
    r = _ratio(rpc, median(data, SINGLE_FLOOR, "rpc_p50_ms"))
    out.append(
        _judge(
            "`request()` p50 <= 2x one raw round trip (XADD + BLPOP)",
            r,
            r is not None and r <= 2.0,
            f"{r:.2f}x ({rpc:.2f} ms)" if r is not None and rpc is not None else "",
        )
    )
    r = _ratio(rpc, median(data, ASYNC_FLOOR, "rpc_p50_ms"))
    out.append(
        Target(
            "`request()` p50 compared with the raw round trip on redis-py's asyncio client",
            f"{r:.2f}x" if r is not None else "-",
            "info" if r is not None else "not measured",
        )
    )
    fs = median(data, "faststream", "rpc_p50_ms")
    r = _ratio(rpc, fs)
    out.append(
        Target(
            "`request()` p50 compared with FastStream's Redis RPC",
            f"{r:.2f}x ({rpc:.2f} ms vs {fs:.2f} ms)"
            if r is not None and rpc is not None and fs is not None
            else "-",
            "info" if r is not None else "not measured",
        )
    )
    for metric, what in [("e2e", "batched (`send_many`)"), ("e2e_single", "single sends")]:
        r = _ratio(median(data, "ours-default", metric), median(data, "ours-tuned", metric))
        out.append(
            _judge(
                f"defaults >= 90% of the tuned end-to-end rate, {what}",
                r,
                r is not None and r >= 0.9,
                f"{r:.0%}" if r is not None else "",
            )
        )
    r = _ratio(best("e2e"), median(data, FLOOR, "e2e"))
    out.append(
        _judge(
            "batched end-to-end >= 50% of the pipelined raw floor",
            r,
            r is not None and r >= 0.5,
            f"{r:.0%}" if r is not None else "",
        )
    )
    mem = best("mem_per_msg", low=True)
    out.append(
        _judge(
            f"Redis memory per queued message <= payload + {MEMORY_BUDGET_B} B "
            f"({payload + MEMORY_BUDGET_B} B)",
            mem,
            mem is not None and mem <= payload + MEMORY_BUDGET_B,
            f"{mem:,.0f} B" if mem is not None else "",
        )
    )
    r = _ratio(best("cpu_worker_per_1k", low=True), median(data, FLOOR, "cpu_worker_per_1k"))
    out.append(
        _judge(
            "worker CPU per 1,000 messages <= 1.5x the raw floor's worker (batched phase)",
            r,
            r is not None and r <= 1.5,
            f"{r:.2f}x" if r is not None else "",
        )
    )
    pe = peer_values("e2e")
    top = max(pe, key=lambda p: pe[p]) if pe else None
    r = _ratio(best("e2e"), pe[top]) if top else None
    out.append(
        _judge(
            "issue 8: batched end-to-end >= 3x the fastest peer",
            r,
            r is not None and r >= 3.0,
            f"{r:.2f}x ({SYSTEMS[top]['label']})" if top and r is not None else "",
        )
    )
    return out


def render_targets(items: list[Target]) -> list[str]:
    """The targets as a Markdown table."""
    lines = ["| Target | Measured | Verdict |", "|---|---|---|"]
    for t in items:
        verdict = f"**{t.verdict}**" if t.verdict in ("met", "missed") else t.verdict
        lines.append(f"| {t.text} | {t.measured} | {verdict} |")
    return lines


def render(data: dict[str, Any]) -> str:
    """The block between the ``bench_peers`` markers: the table, residue, scaling, targets."""
    res = data["systems"]
    lines = [
        f"Last run: {data['date']} UTC, `scripts/bench/run{' --quick' if data['quick'] else ''}`; "
        f"N = {data['n']:,} messages per phase, {data['reps']} repetition(s), median "
        f"(min-max); {data['payload_bytes']} B JSON payload; one worker process; latency "
        f"over {data['lat_n']:,} messages sent one at a time, {data['lat_spacing_ms']} ms "
        f"apart; {data['lat_n']:,} request/reply round trips. Load average (1/5/15 min) at "
        f"start {'/'.join(f'{x:.2f}' for x in data['machine']['load_start'])}, at end "
        f"{'/'.join(f'{x:.2f}' for x in data['load_end'])}.",
        "",
        "| System | Enqueue, single msg/s | Enqueue, batched msg/s | End-to-end, single "
        "sends msg/s | End-to-end, batched msg/s | vs floor | p50 ms | p99 ms | "
        "Request/reply p50 ms | Request/reply p99 ms | CPU s/1k producer | CPU s/1k worker "
        "| Redis B/queued msg | Residue entries (keys) |",
        "|---|" + "---:|" * 13,
    ]
    floor = median(data, FLOOR, "e2e")
    for name in ORDER:
        if name not in res:
            continue
        s = res[name]
        e2e = median(data, name, "e2e")
        vs_floor = f"{e2e / floor:.0%}" if floor and e2e is not None else "-"
        rz = s.get("residue")
        label = SYSTEMS[name]["label"] + (
            " (floor)" if name in (FLOOR, SINGLE_FLOOR, ASYNC_FLOOR) else ""
        )
        lines.append(
            f"| {label} | {cell(s.get('enqueue_single'))} | {cell(s.get('enqueue_batch'))} "
            f"| {cell(s.get('e2e_single'))} | {cell(s.get('e2e'))} | {vs_floor} "
            f"| {cell(s.get('p50_ms'), 2)} | {cell(s.get('p99_ms'), 2)} "
            f"| {cell(s.get('rpc_p50_ms'), 2)} | {cell(s.get('rpc_p99_ms'), 2)} "
            f"| {cell(s.get('cpu_producer_per_1k'), 3)} | {cell(s.get('cpu_worker_per_1k'), 3)} "
            f"| {cell(s.get('mem_per_msg'))} "
            f"| {_f(rz['entries']) if rz else '-'} ({rz['keys'] if rz else '-'}) |"
        )
    lines += ["", "Residue, by key (median repetition):", ""]
    for name in ORDER:
        if name in res and res[name].get("residue"):
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
    lines += ["", "Targets (issue 20), computed from this run:", "", *render_targets(targets(data))]
    if data.get("skipped"):
        lines += ["", "Not run:", ""]
        lines += [f"- {SYSTEMS[n]['label']}: {why}" for n, why in data["skipped"].items()]
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + "."]
    m = data["machine"]
    lines.append(
        f"Machine: {m['cpu']}; {m['os']}; CPython {m['python']}; Redis {m['redis']} (local, "
        "loopback TCP)."
    )
    return "\n".join(lines)
