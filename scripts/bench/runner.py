"""Measures one system (run as ``python -m runner SPEC_JSON``; prints one JSON line).

Per repetition, on the real Redis:

1. no worker running: enqueue N one at a time (single enqueue rate; ``used_memory``
   growth / N = memory per queued message), clear, enqueue N through the batch path
   (batched enqueue rate), clear;
2. start the worker process(es), warm up, then enqueue N through the batch path while
   the worker runs: end-to-end rate = N / (first enqueue -> last handler done), and the
   CPU seconds of the producer (this process) and of the worker process tree;
3. end-to-end with single sends: N messages sent one at a time (each send awaited)
   while the worker runs: N / (first send -> last handler done);
4. low load: ``lat_n`` messages one at a time, 2 ms apart; latency = handler start -
   enqueue time (carried in the payload);
5. request/reply, for systems whose producer has ``request``: ``lat_n`` round trips one
   after the other (after 5 warm-up ones), timed from the call to the reply in hand;
6. one second after the last handler: residue = keys and entries left in the namespace;
7. stop the worker, delete the namespace.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import redis
from common import LAT_MAX, PAD, Recorder, make_payload, self_cpu_seconds, tree_cpu_seconds

HERE = Path(__file__).resolve().parent
BATCH = 100
SHM_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None
LAT_SPACING_S = 0.002
STATIC_KEYS = ("_kombu.binding",)  # routing tables kombu declares once per process


def _keys(r: redis.Redis, patterns: list[str]) -> list[bytes]:
    found: list[bytes] = []
    for pattern in patterns:
        found.extend(r.scan_iter(match=pattern, count=1000))
    return found


def clean(r: redis.Redis, patterns: list[str], *, static: bool = False) -> None:
    """Delete the namespace (kombu's routing keys only with ``static``: once at the end)."""
    keys = [
        k for k in _keys(r, patterns) if static or not any(s.encode() in k for s in STATIC_KEYS)
    ]
    for i in range(0, len(keys), 500):
        r.delete(*keys[i : i + 500])


def residue(r: redis.Redis, patterns: list[str]) -> dict[str, Any]:
    """Keys, entries (stream/list/set/zset/hash lengths; 1 per string) and bytes left."""
    keys = [k for k in _keys(r, patterns) if not any(s.encode() in k for s in STATIC_KEYS)]
    entries = 0
    nbytes = 0
    detail: dict[str, int] = {}
    for k in keys:
        kind = cast(bytes, r.type(k)).decode()
        size = {
            "stream": r.xlen,
            "list": r.llen,
            "zset": r.zcard,
            "hash": r.hlen,
            "set": r.scard,
        }.get(kind, lambda _k: 1)(k)
        entries += size
        nbytes += r.memory_usage(k) or 0
        name = k.decode(errors="replace")
        group = name if size > 1 else f"{kind} keys"
        detail[group] = detail.get(group, 0) + int(size)
    top = dict(sorted(detail.items(), key=lambda kv: -kv[1])[:4])
    return {"keys": len(keys), "entries": entries, "bytes": nbytes, "top": top}


def used_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


async def _wait_done(rec: Recorder, target: int, limit_s: float) -> tuple[int, float]:
    deadline = time.monotonic() + limit_s
    while True:
        done, last = rec.done()
        if done >= target:
            return done, last
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {target} messages handled in {limit_s:.0f}s")
        await asyncio.sleep(0.002)


def _start_workers(spec: dict[str, Any], shm: str) -> list[subprocess.Popen[bytes]]:
    mod = importlib.import_module(f"systems.{spec['module']}")
    procs: list[subprocess.Popen[bytes]] = []
    for slot in range(spec.get("workers", 1)):
        args = [sys.executable, spec["url"], spec.get("variant", "")]
        cmd = mod.worker_cmd(*args, **({"queues": spec["queues"]} if spec.get("queues") else {}))
        env = {
            **os.environ,
            "BENCH_SHM": shm,
            "BENCH_SLOT": str(slot),
            "BENCH_URL": spec["url"],
            "PYTHONPATH": str(HERE),
        }
        log = open(Path(tempfile.gettempdir()) / f"bench-{spec['name']}-{slot}.log", "wb")  # noqa: SIM115 - the worker process owns it
        procs.append(
            subprocess.Popen(
                cmd, env=env, cwd=HERE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )
    return procs


def _stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _round_trips(producer: Any, count: int) -> dict[str, float]:
    """p50/p99 ms of ``count`` sequential request -> reply round trips (echo handler)."""
    for _ in range(5):
        await producer.request(make_payload(-1))
    times: list[float] = []
    for _ in range(count):
        t0 = time.perf_counter()
        reply = await producer.request(make_payload(-1))
        times.append((time.perf_counter() - t0) * 1000)
        if not isinstance(reply, dict) or cast(dict[str, Any], reply).get("p") != PAD:
            raise RuntimeError(f"unexpected reply {reply!r}")
    return {"rpc_p50_ms": statistics.median(times), "rpc_p99_ms": _pct(times, 0.99)}


async def one_rep(spec: dict[str, Any], rec: Recorder, shm: str) -> dict[str, Any]:
    mod = importlib.import_module(f"systems.{spec['module']}")
    r = redis.Redis.from_url(spec["url"])
    n = spec["n"]
    lat_n = spec["lat_n"]
    patterns = mod.PATTERNS
    out: dict[str, Any] = {}
    clean(r, patterns)
    producer = mod.Producer(spec["url"], queues=spec.get("queues") or 1)
    await producer.start()
    if not spec.get("e2e_only"):
        # 1. enqueue rates and memory, no worker running
        m0 = used_memory(r)
        t0 = time.perf_counter()
        for _ in range(n):
            await producer.send(make_payload(-1))
        out["enqueue_single"] = n / (time.perf_counter() - t0)
        out["mem_per_msg"] = (used_memory(r) - m0) / n
        clean(r, patterns)
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            await producer.send_batch([make_payload(-1) for _ in range(min(BATCH, n - start))])
        out["enqueue_batch"] = n / (time.perf_counter() - t0)
        clean(r, patterns)
    rec.reset()
    procs = _start_workers(spec, shm)
    try:
        # 2. warm-up, then end-to-end
        # Some brokers create their consumer group at "$" when the worker starts: probe
        # one message at a time until the worker handles one, then warm up with 20.
        deadline = time.monotonic() + 90
        while rec.done()[0] == 0:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"worker of {spec['name']} did not start")
            await producer.send(make_payload(-1))
            await asyncio.sleep(0.25)
        base, _ = rec.done()
        for _ in range(20):
            await producer.send(make_payload(-1))
        base, _ = await _wait_done(rec, base + 20, 90)
        await asyncio.sleep(0.5)
        base, _ = rec.done()
        cpu_w0 = sum(tree_cpu_seconds(p.pid) for p in procs)
        cpu_p0 = self_cpu_seconds()
        t0 = time.monotonic()
        for start in range(0, n, BATCH):
            await producer.send_batch([make_payload(-1) for _ in range(min(BATCH, n - start))])
        t_sent = time.monotonic()
        _, t_last = await _wait_done(rec, base + n, max(120.0, n / 100))
        cpu_w = sum(tree_cpu_seconds(p.pid) for p in procs) - cpu_w0
        cpu_p = self_cpu_seconds() - cpu_p0
        out["e2e"] = n / (t_last - t0)
        out["enqueue_under_load"] = n / (t_sent - t0)
        out["cpu_worker_per_1k"] = cpu_w / (n / 1000)
        out["cpu_producer_per_1k"] = cpu_p / (n / 1000)
        if not spec.get("e2e_only"):
            # 3. end-to-end with single sends
            base, _ = rec.done()
            t0 = time.monotonic()
            for _ in range(n):
                await producer.send(make_payload(-1))
            _, t_last = await _wait_done(rec, base + n, max(120.0, n / 100))
            out["e2e_single"] = n / (t_last - t0)
            # 4. latency at low load
            base, _ = rec.done()
            rec.clear_latencies(lat_n)
            for i in range(lat_n):
                await producer.send(make_payload(i))
                await asyncio.sleep(LAT_SPACING_S)
            await _wait_done(rec, base + lat_n, 120)
            lat = [x * 1000 for x in rec.latencies(lat_n)]
            out["p50_ms"] = statistics.median(lat)
            out["p99_ms"] = _pct(lat, 0.99)
            # 5. request/reply round trips
            if hasattr(producer, "request"):
                out |= await _round_trips(producer, lat_n)
            # 6. residue
            await asyncio.sleep(1.0)
            out["residue"] = residue(r, patterns)
    finally:
        _stop_workers(procs)
        await producer.close()
        clean(r, patterns, static=True)
        r.close()
    return out


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    assert spec["lat_n"] <= LAT_MAX
    fd, shm = tempfile.mkstemp(prefix="bench-", dir=SHM_DIR)
    os.close(fd)
    rec = Recorder(shm, create=True)
    reps: list[dict[str, Any]] = []
    try:
        for _ in range(spec["reps"]):
            reps.append(await one_rep(spec, rec, shm))
    finally:
        rec.close()
        os.unlink(shm)
    return {"spec": spec, "reps": reps}


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    result = asyncio.run(main(json.loads(sys.argv[1])))
    print("BENCH_RESULT " + json.dumps(result))
