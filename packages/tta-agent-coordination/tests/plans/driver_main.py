"""A plan-runtime driver in its own process, SIGKILLing itself at one transition.

``python driver_main.py '<json>'`` with ``redis_url``, ``prefix``, ``kill_at`` (the
number of the run-state write to die at, 0: never) and ``kill_point`` (``before``: after
the work is done but before its result is written; ``after``: right after it is written,
before anything else happens). Prints ``ready`` once the worker runs.
"""

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).parent))

from rules import StatelessPlanner, StatelessReflector

from tta_agent_coordination import RedisMessageCoordinator
from tta_agent_coordination.plans import PlanRuntime, RuntimeFlags


async def main(config: dict[str, Any]) -> None:
    client = aioredis.Redis.from_url(config["redis_url"])
    coordinator = RedisMessageCoordinator(
        client,
        key_prefix=config["prefix"],
        backoff_base=0.05,
        backoff_max=0.05,
        retry_attempts=5,
    )
    runtime = PlanRuntime(
        coordinator,
        planner=StatelessPlanner(),
        reflector=StatelessReflector(),
        flags=RuntimeFlags(enhanced=True, reflection=True, run_timeout_s=120.0),
    )
    kill_at = int(config["kill_at"])
    point = config["kill_point"]
    writes = 0
    apply = runtime.store.apply

    async def dying_apply(before: Any, after: Any, events: Any) -> bool:
        nonlocal writes
        writes += 1
        if writes == kill_at and point == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        applied = await apply(before, after, events)
        if writes == kill_at and point == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return applied

    runtime.store.apply = dying_apply  # type: ignore[method-assign]
    worker = runtime.worker(
        name=f"killable{os.getpid()}",
        poll_interval=0.1,
        visibility_timeout=1.0,
        maintenance_interval=0.2,
        grace_period=0.0,
        concurrency=1,
    )
    await worker.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
