"""What every system of the peer benchmark shares: the payload, the handler's record, CPU.

The handler of every system calls :func:`record` (or :class:`Recorder.hit`) with the
payload it received. The record lives in a shared-memory file (``/dev/shm``): one slot
per worker process (done count, last done time) and one latency cell per latency
message, so recording costs about a microsecond and never touches Redis. Times are
``time.monotonic()``, which on Linux is one clock for every process of the machine.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any

PAD = "x" * 64
"""Payload padding; with the seq and time fields a payload is ~100 bytes of JSON."""

MAX_WORKERS = 16
HEADER_DOUBLES = 2 * MAX_WORKERS  # per worker slot: count, last done
LAT_MAX = 10_000

_TICK = os.sysconf("SC_CLK_TCK")


def make_payload(seq: int) -> dict[str, Any]:
    """The ~100-byte payload: ``s`` latency slot (-1 none), ``t`` enqueue time, ``p`` pad."""
    return {"s": seq, "t": time.monotonic(), "p": PAD}


class Recorder:
    """Writer (in a worker) or reader (in the driver) of the shared record file."""

    def __init__(self, path: str, slot: int = 0, *, create: bool = False) -> None:
        size = 8 * (HEADER_DOUBLES + LAT_MAX)
        if create:
            with open(path, "wb") as f:
                f.write(b"\0" * size)
        self._fd = os.open(path, os.O_RDWR)
        self._mm = mmap.mmap(self._fd, size)
        self._slot = slot
        self._count = 0
        self._lock = threading.Lock()

    # --- worker side ---
    def hit(self, payload: dict[str, Any]) -> None:
        now = time.monotonic()
        seq = payload.get("s", -1)
        with self._lock:
            if seq >= 0:
                struct.pack_into("d", self._mm, 8 * (HEADER_DOUBLES + seq), now - payload["t"])
            self._count += 1
            struct.pack_into("dd", self._mm, 16 * self._slot, float(self._count), now)

    # --- driver side ---
    def done(self) -> tuple[int, float]:
        """Total handled over every worker slot, and the latest done time."""
        total = 0
        last = 0.0
        for w in range(MAX_WORKERS):
            c, t = struct.unpack_from("dd", self._mm, 16 * w)
            total += int(c)
            last = max(last, t)
        return total, last

    def reset(self) -> None:
        """Zero every worker slot (before new worker processes start)."""
        struct.pack_into(f"{HEADER_DOUBLES}d", self._mm, 0, *([0.0] * HEADER_DOUBLES))

    def latencies(self, n: int) -> list[float]:
        return list(struct.unpack_from(f"{n}d", self._mm, 8 * HEADER_DOUBLES))

    def clear_latencies(self, n: int) -> None:
        struct.pack_into(f"{n}d", self._mm, 8 * HEADER_DOUBLES, *([0.0] * n))

    def close(self) -> None:
        self._mm.close()
        os.close(self._fd)


_recorder: Recorder | None = None
_init_lock = threading.Lock()


def recorder() -> Recorder:
    """The worker process's recorder, from ``BENCH_SHM`` and ``BENCH_SLOT``."""
    global _recorder
    if _recorder is not None:
        return _recorder
    with _init_lock:
        if _recorder is None:
            _recorder = Recorder(os.environ["BENCH_SHM"], int(os.environ.get("BENCH_SLOT", "0")))
        return _recorder


def record(payload: dict[str, Any]) -> None:
    """What every no-op handler does."""
    recorder().hit(payload)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / _TICK
        stack.extend(children.get(p, []))
    return total


def self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system
