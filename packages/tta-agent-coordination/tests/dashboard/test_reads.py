"""The paginated reads under the dashboard: bad arguments, foreign index members, gone keys."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from tta_agent_coordination.dashboard import DashboardSources
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.breaker_pages import BreakerDirectory
from tta_agent_coordination.redis.dead_letter_pages import read_dead_letter_page
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.queue_pages import read_queue_flows, read_queue_page

from .conftest import send


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"count": 0}, "count must be within"),
        ({"count": 201}, "count must be within"),
        ({"cursor": "abc"}, "invalid queue page cursor"),
        ({"cursor": "1.2.3"}, "invalid queue page cursor"),
    ],
)
async def test_queue_page_refuses_bad_arguments(
    coordination_redis: aioredis.Redis, key_prefix: str, kwargs: dict, match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        await read_queue_page(coordination_redis, KeySpace(key_prefix), **kwargs)


async def test_queue_page_skips_members_that_are_not_agent_ids_and_escapes_the_filter(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> None:
    keys = KeySpace(key_prefix)
    await coordination_redis.sadd(keys.queue_index, "a:1", "b:2", "not an id!", "c*:3")
    page = await read_queue_page(coordination_redis, keys)
    assert [str(q) for q in page.queues] == ["a:1", "b:2"]
    assert page.next_cursor is None
    starred = await read_queue_page(coordination_redis, keys, contains="*")
    assert starred.queues == []  # "*" is matched literally, and "c*:3" is not an agent id
    assert await read_queue_flows(coordination_redis, keys, []) == {}


async def test_dead_letter_page_refuses_a_bad_count(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> None:
    with pytest.raises(ConfigurationError, match="count must be within"):
        await read_dead_letter_page(
            coordination_redis, KeySpace(key_prefix), AgentId("a", "b"), count=0
        )


async def test_oldest_ready_age_counts_only_ready_messages(sources: DashboardSources) -> None:
    agent = AgentId("aging", "a1")
    await send(sources.coordinator, agent, 2)
    flows = await read_queue_flows(sources.redis, sources.coordinator.keys, [agent])
    assert flows[agent].oldest_ready_age_s is not None
    assert flows[agent].entries_added == 2
    batch = await sources.coordinator.receive_batch(agent, 2)
    assert len(batch) == 2
    flows = await read_queue_flows(sources.redis, sources.coordinator.keys, [agent])
    assert flows[agent].oldest_ready_age_s is None  # both leased: nothing waits


async def test_a_breaker_whose_hash_is_gone_leaves_the_list(
    coordination_redis: aioredis.Redis, key_prefix: str
) -> None:
    keys = KeySpace(key_prefix)
    await coordination_redis.hset(keys.breaker_state("gone"), mapping={"s": "closed", "g": 1})
    directory = BreakerDirectory(coordination_redis, keys, scan_calls=1000, scan_count=1000)
    assert [row.name for row in await directory.read()] == ["gone"]
    assert directory.complete
    await coordination_redis.delete(keys.breaker_state("gone"))
    assert await directory.read() == []
    assert await directory.read() == []
