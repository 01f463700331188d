"""The meeting and conversation pages cost a bounded number of Redis calls at any size.

Seeded with 200 meetings, 1,000 organizations and one organization of 5,000 agents
(FakeRedis: the count of calls, not the time, is what is checked).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tta_agent_coordination.dashboard import DashboardSources, create_app
from tta_agent_coordination.interactions import AgentMessaging
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import fake_redis, unique_prefix

from .test_scale import Calls, count_calls, view

MEETINGS = 200
ORGANIZATIONS = 1_000
CROWD = 5_000
HOST = AgentId("host", "h")
GUEST = AgentId("guest", "g")


async def seed(messaging: AgentMessaging) -> None:
    await messaging.register_organization("crowd")
    for agent in (HOST, GUEST):
        await messaging.register_agent(agent, organization="crowd")
    for n in range(MEETINGS):
        await messaging.meeting.create_meeting(HOST, [GUEST], meeting_id=f"m{n:03d}")
    keys = messaging.keys
    # The directory's sets, filled in bulk: the pages read only these and the inboxes.
    await messaging.redis.sadd(keys.organizations, *(f"org{n:04d}" for n in range(ORGANIZATIONS)))
    await messaging.redis.sadd(
        keys.organization_agents("crowd"), *(f"crowd:c{n:04d}" for n in range(CROWD))
    )
    await messaging.async_conversation.send(HOST, GUEST, "hello")


@pytest.fixture
async def big() -> AsyncIterator[tuple[DashboardSources, Calls, httpx.AsyncClient]]:
    client = fake_redis()
    prefix = unique_prefix()
    coord = RedisMessageCoordinator(client, key_prefix=prefix)
    registry = RedisAgentRegistry(client, key_prefix=prefix)
    sources = DashboardSources(client, coord, registry)
    await seed(sources.interactions.messaging)
    calls = count_calls(client)
    app = create_app(sources)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://d")
    try:
        yield sources, calls, http
    finally:
        await http.aclose()
        await coord.aclose()
        await client.aclose()


async def test_meeting_pages_make_a_bounded_number_of_redis_calls(
    big: tuple[DashboardSources, Calls, httpx.AsyncClient],
) -> None:
    _, calls, http = big
    # One ZREVRANGEBYSCORE, one status script per meeting shown, one ZCARD.
    listing = await view(calls, http, "/meetings")
    assert listing.round_trips <= 1 + 50 + 1, listing
    older = await view(calls, http, "/meetings", cursor="99999999999999:10", count=20)
    assert older.round_trips <= 1 + 20 + 1, older
    # A meeting's page: its status and one page of its history.
    detail = await view(calls, http, "/meetings/m100")
    assert detail.round_trips <= 3, detail


async def test_the_conversations_page_makes_a_bounded_number_of_redis_calls(
    big: tuple[DashboardSources, Calls, httpx.AsyncClient],
) -> None:
    sources, calls, http = big
    # SSCAN and SCARD of the organizations, then per organization shown: SCARD, a few
    # SSCAN steps (stopping at 100 agents), one pipeline of ZCARDs when it has agents.
    first = await view(calls, http, "/conversations", count=20)
    shown = len(re.findall(r'<h2 id="org-', (await http.get("/conversations?count=20")).text))
    assert shown <= 25
    assert first.round_trips <= 2 + shown * 2 + 3 + 1, first  # "crowd": 3 steps, 1 pipeline
    assert first.commands <= 2 + shown * 2 + 3 + 100, first  # at most 100 ZCARDs
    # The 5,000-agent organization: 100 agents shown, a bounded walk of its set.
    crowd = await sources.interactions.organizations(count=ORGANIZATIONS + 1)
    crowd_row = next(r for r in crowd.rows if r.org_id == "crowd")
    assert crowd_row.agent_count == CROWD + 2
    assert len(crowd_row.agents) == 100
    calls.reset()
    row = await sources.interactions._organization("crowd")  # pyright: ignore[reportPrivateUsage]
    assert row.agent_count == CROWD + 2
    assert calls.round_trips <= 1 + 3 + 1, calls
    assert calls.commands <= 1 + 3 + 200, calls
