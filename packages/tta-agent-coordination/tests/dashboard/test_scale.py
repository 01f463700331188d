"""A page view costs a bounded number of Redis calls, whatever the deployment holds.

Seeded with 1,000 queues and 10,000 dead letters (FakeRedis: the count of calls, not the
time, is what is checked; timings belong in the benchmarks).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from tta_agent_coordination.dashboard import DashboardSources, create_app
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import fake_redis, unique_prefix

from .conftest import TOKEN, dead_letter, message

QUEUES = 1_000
DEAD = 10_000
BIG = AgentId("big", "dlq")


@dataclass
class Calls:
    """Round trips (a command, or a whole pipeline) and the commands they carried."""

    round_trips: int = 0
    commands: int = 0

    def reset(self) -> None:
        self.round_trips = self.commands = 0


def count_calls(client: aioredis.Redis) -> Calls:
    """Wrap ``client`` so that every command and pipeline it sends is counted."""
    calls = Calls()
    execute = client.execute_command
    make_pipeline = client.pipeline

    async def counted(*args: Any, **options: Any) -> Any:
        calls.round_trips += 1
        calls.commands += 1
        return await execute(*args, **options)

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make_pipeline(*args, **kwargs)
        run = pipe.execute

        async def execute_pipe(*a: Any, **k: Any) -> Any:
            calls.round_trips += 1
            calls.commands += len(pipe.command_stack)
            return await run(*a, **k)

        pipe.execute = execute_pipe  # type: ignore[method-assign]
        return pipe

    client.execute_command = counted  # type: ignore[method-assign]
    client.pipeline = pipeline  # type: ignore[method-assign]
    return calls


@pytest.fixture
async def big() -> AsyncIterator[tuple[DashboardSources, Calls, httpx.AsyncClient]]:
    client = fake_redis()
    prefix = unique_prefix()
    coord = RedisMessageCoordinator(client, key_prefix=prefix, dlq_max_len=DEAD * 2)
    registry = RedisAgentRegistry(client, key_prefix=prefix)
    agents = [AgentId("agent", f"i{n:04d}") for n in range(QUEUES - 1)]
    results = await coord.send_many([message(a, 0) for a in agents])
    assert all(r.delivered for r in results)
    await dead_letter(coord, BIG, DEAD)
    assert len(await coord.known_queues()) == QUEUES
    assert (await coord.queue_stats(BIG)).dead == DEAD
    calls = count_calls(client)
    sources = DashboardSources(client, coord, registry)
    app = create_app(sources, token=TOKEN)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://d")
    try:
        yield sources, calls, http
    finally:
        await http.aclose()
        await coord.aclose()
        await client.aclose()


async def view(calls: Calls, http: httpx.AsyncClient, url: str, **params: Any) -> Calls:
    calls.reset()
    response = await http.get(url, params=params)
    assert response.status_code == 200, response.text
    return Calls(calls.round_trips, calls.commands)


@pytest.mark.slow
async def test_page_views_make_a_bounded_number_of_redis_calls(
    big: tuple[DashboardSources, Calls, httpx.AsyncClient],
) -> None:
    _, calls, http = big
    # 50 queues: SSCAN (at most 8), SCARD, one queue_stats script each, two pipelines.
    queues = await view(calls, http, "/queues")
    assert queues.round_trips <= 8 + 1 + 50 + 2, queues
    assert queues.commands <= 8 + 1 + 50 + (1 + 6 * 50) + 3 * 50, queues
    # Filtering may take more SSCAN steps, never more than 8.
    filtered_calls = calls
    calls.reset()
    filtered_page = await http.get("/queues", params={"q": "i09"})
    filtered = Calls(filtered_calls.round_trips, filtered_calls.commands)
    assert filtered.round_trips <= 8 + 1 + 50 + 2, filtered
    assert "agent:i09" in filtered_page.text
    # A dead-letter page of a 10,000-letter queue: one XRANGE, the stats, the flow.
    dlq = await view(calls, http, f"/queues/{BIG}")
    assert dlq.round_trips <= 4, dlq
    assert dlq.commands <= 12, dlq
    later = await view(calls, http, f"/queues/{BIG}", after="1-0", count=200)
    assert later.round_trips <= 4, later
    earlier = await view(calls, http, f"/queues/{BIG}", before="99999999999999-0")
    assert earlier.round_trips <= 4, earlier
    confirm = await view(calls, http, f"/queues/{BIG}/confirm", action="purge")
    assert confirm.round_trips == 1
    breakers = await view(calls, http, "/breakers")
    assert breakers.round_trips <= 4 + 1, breakers  # at most 4 SCAN steps + states
    agents = await view(calls, http, "/agents")
    assert agents.round_trips <= 2, agents


RUNS = 2_000


@pytest.fixture
async def many_runs() -> AsyncIterator[tuple[Calls, httpx.AsyncClient]]:
    from tta_agent_coordination.plans import RunMode, Task
    from tta_agent_coordination.plans.machine import Policy, new_run

    client = fake_redis()
    prefix = unique_prefix()
    coord = RedisMessageCoordinator(client, key_prefix=prefix)
    registry = RedisAgentRegistry(client, key_prefix=prefix)
    sources = DashboardSources(client, coord, registry)
    assert sources.runs_admin is not None
    store = sources.runs_admin.store
    for n in range(RUNS):
        first = new_run(f"run-{n:05d}", Task(agent=BIG), RunMode.LEGACY, Policy())
        state = first.state.model_copy(update={"created_ms": 1_000 + n})
        assert await store.create(state, first.events, 1_000 + n)
    calls = count_calls(client)
    app = create_app(sources, token=TOKEN)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://d")
    try:
        yield calls, http
    finally:
        await http.aclose()
        await coord.aclose()
        await client.aclose()


async def test_run_pages_make_a_bounded_number_of_redis_calls(
    many_runs: tuple[Calls, httpx.AsyncClient],
) -> None:
    calls, http = many_runs
    # A page of 50: one ZREVRANGEBYSCORE, two pipelines (statuses, then states), ZCARD.
    page = await view(calls, http, "/runs")
    assert page.round_trips == 4, page
    assert page.commands == 1 + 50 + 50 + 1, page
    deeper = await view(calls, http, "/runs", cursor="2500:0")
    assert deeper.round_trips == 4, deeper
    # A status no run has: at most FILTER_SCAN_LIMIT entries examined, in page-size steps.
    rare = await view(calls, http, "/runs", status="completed")
    steps = 1_000 // 50
    assert rare.round_trips <= 2 * steps + 1, rare
    assert rare.commands <= steps * (1 + 50) + 1, rare
    stopped = await http.get("/runs", params={"status": "completed"})
    assert "(1000 examined)" in stopped.text
    assert 'id="older-runs" href="/runs?cursor=2000%3A1&amp;count=50&amp;status=completed"' in (
        stopped.text
    )
    # A run's page: its state and one page of its events.
    detail = await view(calls, http, "/runs/run-00500")
    assert detail.round_trips == 2, detail
