"""A worker process for the fault-injection tests (run as a script; tests never import it).

Usage: ``python worker_main.py CONFIG_JSON`` (see ``processes.WorkerConfig`` for the keys).

It runs one ``AgentWorker`` built as an application builds it: the Redis client of
``CoordinationSettings`` (production timeouts, no retries inside redis-py), the default
guard, the coordinator and registry of those settings. Every event is appended, one JSON
line at a time (``O_APPEND``: a line is never interleaved, and a SIGKILL loses at most the
line being written), to the ledger file the test reads:

- ``{"event": "ready", ...}`` once the worker runs (registered, if it registers);
- ``{"event": "handled", "id": ..., "attempt": n, ...}`` when a handler starts;
- ``{"event": "stopped", ...}`` after a graceful stop (SIGTERM).

Every line also has ``worker`` (its name), ``pid`` and ``t`` (wall-clock seconds).
The handler follows the payload: ``{"fail": "permanent"}`` raises ``PermanentError``,
``{"fail": "once"}`` fails transiently on its first attempt; otherwise it sleeps
``handler_s`` and succeeds.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import structlog

from tta_agent_coordination import AgentId, AgentWorker, MessageContext, PermanentError
from tta_agent_coordination.errors import AgentAlreadyRegisteredError
from tta_agent_coordination.settings import CoordinationSettings

structlog.configure(
    processors=[
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="%H:%M:%S.%f", utc=False),
        structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        ),
    ]
)


class Ledger:
    """Appends JSON lines to the ledger file."""

    def __init__(self, path: str, name: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._name = name

    def write(self, event: str, **fields: Any) -> None:
        record = {"event": event, "worker": self._name, "pid": os.getpid(), "t": time.time()}
        os.write(self._fd, (json.dumps({**record, **fields}) + "\n").encode())


async def main(config: dict[str, Any]) -> None:
    ledger = Ledger(config["ledger"], config["name"])
    settings = CoordinationSettings(
        redis_url=config["redis_url"],
        key_prefix=config["prefix"],
        heartbeat_ttl_s=config.get("heartbeat_ttl_s", 30.0),
    )
    store = None
    if config.get("store"):
        from tta_agent_coordination_postgres import PostgresMessageStore

        store = PostgresMessageStore(config["store"]["dsn"], schema=config["store"]["schema"])
        await store.open()
    client = settings.redis_client()
    coordinator_options: dict[str, Any] = dict(config.get("coordinator", {}))
    if store is not None:
        coordinator_options |= {"store": store, "durability": config["store"]["durability"]}
    coordinator = settings.build_coordinator(client, **coordinator_options)
    registry = (
        settings.build_registry(client, coordinator=coordinator)
        if config.get("registered", True)
        else None
    )
    agent = AgentId.parse(config["agent"])
    handler_s = float(config.get("handler_s", 0.0))

    async def handle(ctx: MessageContext[Any]) -> None:
        ledger.write("handled", id=ctx.message.message_id, attempt=ctx.attempts)
        fail = ctx.message.payload.get("fail") if isinstance(ctx.message.payload, dict) else None
        if fail == "permanent":
            raise PermanentError("told to fail for good")
        if fail == "once" and ctx.attempts == 1:
            raise RuntimeError("told to fail once")
        if handler_s:
            await asyncio.sleep(handler_s)

    def new_worker() -> AgentWorker:
        worker = AgentWorker(
            coordinator,
            registry,
            agent,
            concurrency=int(config.get("concurrency", 4)),
            visibility_timeout=float(config.get("visibility_s", 30.0)),
            poll_interval=float(config.get("poll_s", 0.5)),
            maintenance_interval=float(config.get("maintenance_s", 15.0)),
            grace_period=5.0,
        )
        worker.add_handler(handle)
        return worker

    # A replacement waits for the previous owner's registration to expire, as a standby
    # would: registering is refused while it is alive.
    deadline = time.monotonic() + float(config.get("register_wait_s", 0.0))
    while True:
        worker = new_worker()
        try:
            await worker.start()
            break
        except AgentAlreadyRegisteredError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    ledger.write("ready")
    try:
        await worker.run()
        ledger.write("stopped", **vars(worker.stats))
    finally:
        await coordinator.aclose()
        if registry is not None:
            await registry.aclose()
        await client.aclose()
        if store is not None:
            await store.aclose()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
