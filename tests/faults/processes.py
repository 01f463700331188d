"""Worker processes (``worker_main.py``) a fault test can SIGKILL, SIGSTOP and replace.

``WorkerProcesses`` (the ``worker_processes`` fixture) kills every process it started when
the test ends, whatever happened. Each process appends what it handles to a ledger file of
its own in the test's ledger directory (read with ``ledger.read_ledger``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

WORKER_SCRIPT = Path(__file__).with_name("worker_main.py")
READY_LIMIT_S = 30.0
"""How long a worker process may take to start (a replacement waits for a registration
to expire first); generous: Python starts slowly on a loaded CI machine."""


@dataclass
class WorkerConfig:
    """What ``worker_main.py`` runs (sent as JSON on its command line)."""

    redis_url: str
    prefix: str
    agent: str
    name: str
    ledger: str = ""
    handler_s: float = 0.0
    concurrency: int = 4
    visibility_s: float = 30.0
    poll_s: float = 0.5
    maintenance_s: float = 15.0
    """``AgentWorker(maintenance_interval=...)`` (its default: 15 s)."""
    heartbeat_ttl_s: float = 30.0
    registered: bool = True
    register_wait_s: float = 0.0
    """How long to keep trying to register while another live owner holds the id."""
    store: dict[str, str] | None = None
    """``{"dsn", "schema", "durability"}``: a PostgresMessageStore for the coordinator."""
    coordinator: dict[str, Any] = field(default_factory=dict)
    """More ``RedisMessageCoordinator`` keyword arguments (``backoff_base``, ...)."""


@dataclass
class WorkerProcess:
    """One running ``worker_main.py``."""

    config: WorkerConfig
    proc: subprocess.Popen[bytes]
    log_path: Path
    frozen: bool = False

    @property
    def name(self) -> str:
        """The worker's name in the ledger."""
        return self.config.name

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.proc.pid

    @property
    def ledger_path(self) -> Path:
        """Its ledger file."""
        return Path(self.config.ledger)

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The end of its log (stdout and stderr), for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def wait_ready(self, limit_s: float = READY_LIMIT_S) -> float:
        """Wait for its ``ready`` ledger line; the wall-clock time it was written."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.ledger_path.exists():
                for line in self.ledger_path.read_text().splitlines():
                    if '"event": "ready"' in line:
                        return float(json.loads(line)["t"])
            if not self.alive():
                raise AssertionError(
                    f"worker {self.name} exited ({self.proc.returncode}) before it was ready:\n"
                    + self.log_tail()
                )
            await asyncio.sleep(0.05)
        raise AssertionError(f"worker {self.name} not ready after {limit_s}s:\n{self.log_tail()}")

    def kill9(self) -> float:
        """SIGKILL (a crash: no shutdown, no deregistration) and reap; the wall-clock time."""
        killed_at = time.time()
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.frozen = False
        return killed_at

    def freeze(self) -> float:
        """SIGSTOP the process; the wall-clock time."""
        os.kill(self.pid, signal.SIGSTOP)
        self.frozen = True
        return time.time()

    def thaw(self) -> float:
        """SIGCONT after :meth:`freeze`; the wall-clock time."""
        resumed_at = time.time()
        os.kill(self.pid, signal.SIGCONT)
        self.frozen = False
        return resumed_at


class WorkerProcesses:
    """Starts worker processes for one test and kills all of them at its end."""

    def __init__(self, ledger_dir: Path) -> None:
        self.ledger_dir = ledger_dir
        self._procs: list[WorkerProcess] = []

    def start(self, config: WorkerConfig) -> WorkerProcess:
        """Start ``worker_main.py`` with ``config`` (its ledger goes to the ledger dir)."""
        if any(p.name == config.name for p in self._procs):
            raise ValueError(f"worker name {config.name!r} is taken in this test")
        config.ledger = str(self.ledger_dir / f"{config.name}.jsonl")
        log_path = self.ledger_dir / f"{config.name}.log"
        with log_path.open("ab") as log:
            # A fixed argument list (this interpreter, a file of the suite), no shell.
            proc = subprocess.Popen(
                [sys.executable, str(WORKER_SCRIPT), json.dumps(asdict(config))],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        worker = WorkerProcess(config=config, proc=proc, log_path=log_path)
        self._procs.append(worker)
        return worker

    def close(self) -> None:
        """SIGKILL every process still running (resuming frozen ones first)."""
        for worker in self._procs:
            if worker.alive():
                if worker.frozen:
                    worker.thaw()
                worker.kill9()
