"""The dashboard's pages and writes over the public API, on FakeRedis and the real Redis."""

from __future__ import annotations

import re

import pytest
from structlog.testing import capture_logs

from tta_agent_coordination.dashboard import DashboardSources
from tta_agent_coordination.models import AgentId, MessagePriority
from tta_agent_coordination.redis.breaker_store import RedisBreakerStore
from tta_agent_coordination.resilience import CircuitBreaker, CircuitBreakerConfig

from .conftest import TOKEN, Client, dead_letter, send

WORKER = AgentId("world_builder", "w1")


def dead_ids(html: str) -> list[str]:
    return re.findall(r'<tr id="dl-([0-9]+-[0-9]+)"', html)


async def test_queues_page_shows_counts_flow_and_a_live_fragment(
    sources: DashboardSources, client: Client
) -> None:
    await send(sources.coordinator, WORKER, 3)
    await dead_letter(sources.coordinator, AgentId("narrator", "n1"), 2)
    http = await client()

    page = await http.get("/queues")
    assert page.status_code == 200
    assert "<html" in page.text
    assert "htmx.min.js" in page.text
    row = re.search(r'<tr id="queue-world_builder:w1">(.*?)</tr>', page.text, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num[^"]*">(.*?)</td>', row.group(1), re.S)
    assert cells[:3] == ["0", "3", "0"]  # high, normal, low
    assert re.search(r'class="num added">3<', row.group(1))
    assert 'id="queue-total">2<' in page.text
    assert "narrator:n1" in page.text
    assert 'pill bad">2<' in page.text

    live = await http.get("/queues", headers={"HX-Request": "true"})
    assert live.status_code == 200
    assert "<html" not in live.text
    assert live.text.lstrip().startswith('<div id="live"')
    assert 'hx-get="/queues"' in live.text

    root = await http.get("/", follow_redirects=False)
    assert root.status_code == 302
    assert root.headers["location"] == "/queues"


async def test_sparklines_fill_in_as_the_page_is_refreshed(
    sources: DashboardSources, client: Client
) -> None:
    sources.samples._min_interval_s = 0  # one sample per view
    http = await client()
    await send(sources.coordinator, WORKER, 1)
    await http.get("/queues")
    await send(sources.coordinator, WORKER, 4, start=1)
    page = await http.get("/queues")
    assert [s.depth for s in sources.samples.samples(str(WORKER))] == [1, 5]
    assert [s.added for s in sources.samples.samples(str(WORKER))] == [1, 5]
    points = re.findall(r'<polyline points="([^"]*)"', page.text)
    assert points[0].count(",") == 2  # depth: two points


async def test_queue_list_pages_through_the_index_and_filters(
    sources: DashboardSources, client: Client
) -> None:
    agents = [AgentId("pager", f"i{n:03d}") for n in range(150)] + [AgentId("odd", "one")]
    for agent in agents:
        await send(sources.coordinator, agent, 1)
    http = await client(page_size=40)
    seen: set[str] = set()
    url = "/queues"
    for _ in range(20):
        page = await http.get(url)
        assert page.status_code == 200
        seen.update(re.findall(r'<tr id="queue-([^"]+)">', page.text))
        found = re.search(r'id="next-page" href="/(queues\?[^"]+)"', page.text)
        if found is None:
            break
        url = "/" + found.group(1).replace("&amp;", "&")
    assert seen == {str(a) for a in agents}

    filtered = await http.get("/queues", params={"q": "odd"})
    assert re.findall(r'<tr id="queue-([^"]+)">', filtered.text) == ["odd:one"]
    none = await http.get("/queues", params={"q": "nothing-like-this"})
    assert 'id="no-queues"' in none.text


async def test_agents_page_groups_registrations_by_type(
    sources: DashboardSources, client: Client
) -> None:
    http = await client()
    empty = await http.get("/agents")
    assert 'id="no-agents"' in empty.text
    for agent in (WORKER, AgentId("world_builder", "w2"), AgentId("narrator", "n1")):
        await sources.registry.register_id(agent, name=f"{agent.type} agent")
    await sources.registry.set_status(WORKER, "busy")
    page = await http.get("/agents")
    assert page.status_code == 200
    assert re.search(
        r'id="type-world_builder">world_builder <span class="pill ok">2 of 2', page.text
    )
    assert 'id="type-narrator"' in page.text
    row = re.search(r'<tr id="agent-world_builder:w1">(.*?)</tr>', page.text, re.S)
    assert row is not None
    assert "busy" in row.group(1)
    assert "alive" in row.group(1)
    age = re.search(r'heartbeat-age">([0-9.]+)s<', row.group(1))
    assert age is not None
    assert float(age.group(1)) < 30


async def test_dead_letters_page_with_cursors_both_ways(
    sources: DashboardSources, client: Client
) -> None:
    await dead_letter(sources.coordinator, WORKER, 7)
    http = await client()
    first = await http.get(f"/queues/{WORKER}", params={"count": 3})
    assert first.status_code == 200
    ids = dead_ids(first.text)
    assert len(ids) == 3
    assert 'id="older"' not in first.text
    collected = list(ids)
    page = first
    while newer := re.search(r'id="newer" href="\?after=([0-9-]+)&amp;count=3"', page.text):
        page = await http.get(f"/queues/{WORKER}", params={"after": newer.group(1), "count": 3})
        collected += dead_ids(page.text)
    assert len(collected) == 7 == len(set(collected))
    assert collected == sorted(collected, key=lambda i: tuple(map(int, i.split("-"))))
    older = re.search(r'id="older" href="\?before=([0-9-]+)&amp;count=3"', page.text)
    assert older is not None
    back = await http.get(f"/queues/{WORKER}", params={"before": older.group(1), "count": 3})
    assert dead_ids(back.text) == collected[3:6]

    bad = await http.get(f"/queues/{WORKER}", params={"after": "not-an-id"})
    assert bad.status_code == 400
    assert "invalid dead-letter id" in bad.text
    both = await http.get(f"/queues/{WORKER}", params={"after": ids[0], "before": ids[1]})
    assert both.status_code == 400
    count = await http.get(f"/queues/{WORKER}", params={"count": "many"})
    assert count.status_code == 400
    too_many = await http.get(f"/queues/{WORKER}", params={"count": 100_000})
    assert too_many.status_code == 400
    bad_agent = await http.get("/queues/Bad%20Agent!")
    assert bad_agent.status_code == 400


async def test_dead_letter_detail(sources: DashboardSources, client: Client) -> None:
    await dead_letter(sources.coordinator, WORKER, 1)
    http = await client()
    listing = await http.get(f"/queues/{WORKER}")
    (dead_id,) = dead_ids(listing.text)
    detail = await http.get(f"/queues/{WORKER}/dead/{dead_id}")
    assert detail.status_code == 200
    assert 'id="message-id">world_builder-w1-0<' in detail.text
    assert "&#34;n&#34;: 0" in detail.text or '"n": 0' in detail.text
    assert "boom" in detail.text
    assert "permanent" in detail.text
    assert 'id="replay-one"' in detail.text
    gone = await http.get(f"/queues/{WORKER}/dead/1-0")
    assert gone.status_code == 404
    bad = await http.get(f"/queues/{WORKER}/dead/xyz")
    assert bad.status_code == 400


async def test_replay_one_with_the_token_moves_it_back_and_is_audited(
    sources: DashboardSources, client: Client
) -> None:
    await dead_letter(sources.coordinator, WORKER, 2)
    http = await client()
    confirm = await http.get(
        f"/queues/{WORKER}/confirm", params={"action": "replay", "message_id": "world_builder-w1-1"}
    )
    assert confirm.status_code == 200
    assert 'id="confirm-form"' in confirm.text
    with capture_logs() as logs:
        done = await http.post(
            f"/queues/{WORKER}/replay",
            data={"token": TOKEN, "confirm": "yes", "message_id": "world_builder-w1-1"},
        )
    assert done.status_code == 303
    assert done.headers["location"].startswith("/queues/world_builder:w1?notice=Replayed+1")
    stats = await sources.coordinator.queue_stats(WORKER)
    assert stats.dead == 1
    assert stats.ready[MessagePriority.NORMAL] == 1
    received = await sources.coordinator.receive(WORKER)
    assert received is not None
    assert received.message.message_id == "world_builder-w1-1"
    audit = [e for e in logs if e["event"] == "dashboard_write"]
    assert audit == [
        {
            "event": "dashboard_write",
            "log_level": "info",
            "action": "replay",
            "queue": "world_builder:w1",
            "message_id": "world_builder-w1-1",
            "count": 1,
            "client": "127.0.0.1",
        }
    ]
    page = await http.get(done.headers["location"])
    assert 'id="notice">Replayed 1 (message world_builder-w1-1).' in page.text


async def test_replay_all_and_purge_with_a_bearer_header(
    sources: DashboardSources, client: Client
) -> None:
    await dead_letter(sources.coordinator, WORKER, 3)
    http = await client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    done = await http.post(f"/queues/{WORKER}/replay", data={"confirm": "yes"}, headers=auth)
    assert done.status_code == 303
    assert (await sources.coordinator.queue_stats(WORKER)).dead == 0
    assert (await sources.coordinator.queue_stats(WORKER)).ready[MessagePriority.NORMAL] == 3

    await dead_letter(sources.coordinator, AgentId("narrator", "n1"), 4)
    confirm = await http.get("/queues/narrator:n1/confirm", params={"action": "purge"})
    assert "All 4 dead letters" in confirm.text
    with capture_logs() as logs:
        purged = await http.post(
            "/queues/narrator:n1/purge", data={"confirm": "yes", "token": TOKEN}
        )
    assert purged.status_code == 303
    assert "Purged+4" in purged.headers["location"]
    assert (await sources.coordinator.queue_stats(AgentId("narrator", "n1"))).dead == 0
    assert [e["action"] for e in logs if e["event"] == "dashboard_write"] == ["purge"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [({"token": "wrong", "confirm": "yes"}, "wrong"), ({"confirm": "yes"}, "missing")],
)
async def test_a_wrong_or_missing_token_is_refused_and_changes_nothing(
    sources: DashboardSources, client: Client, data: dict[str, str], reason: str
) -> None:
    await dead_letter(sources.coordinator, WORKER, 1)
    http = await client()
    with capture_logs() as logs:
        for action in ("replay", "purge"):
            refused = await http.post(f"/queues/{WORKER}/{action}", data=data)
            assert refused.status_code == 403
            assert f"{reason} token: nothing was changed" in refused.text
    assert (await sources.coordinator.queue_stats(WORKER)).dead == 1
    refusals = [e for e in logs if e["event"] == "dashboard_write_refused"]
    assert [(e["action"], e["reason"]) for e in refusals] == [
        ("replay", reason),
        ("purge", reason),
    ]


async def test_an_unconfirmed_write_is_refused(sources: DashboardSources, client: Client) -> None:
    await dead_letter(sources.coordinator, WORKER, 1)
    http = await client()
    refused = await http.post(f"/queues/{WORKER}/purge", data={"token": TOKEN})
    assert refused.status_code == 400
    assert (await sources.coordinator.queue_stats(WORKER)).dead == 1
    bad_action = await http.get(f"/queues/{WORKER}/confirm", params={"action": "drop"})
    assert bad_action.status_code == 400


async def test_without_a_token_the_dashboard_is_read_only(
    sources: DashboardSources, client: Client
) -> None:
    await dead_letter(sources.coordinator, WORKER, 1)
    http = await client(token=None)
    page = await http.get(f"/queues/{WORKER}")
    assert 'id="mode">read-only<' in page.text
    assert 'id="replay-all"' not in page.text
    assert "Read-only" in page.text
    confirm = await http.get(f"/queues/{WORKER}/confirm", params={"action": "replay"})
    assert 'id="confirm-form"' not in confirm.text
    refused = await http.post(
        f"/queues/{WORKER}/replay", data={"token": "anything", "confirm": "yes"}
    )
    assert refused.status_code == 403
    assert "read-only" in refused.text
    assert (await sources.coordinator.queue_stats(WORKER)).dead == 1


async def test_breakers_page_shows_shared_breakers(
    sources: DashboardSources, client: Client, key_prefix: str
) -> None:
    http = await client()
    none = await http.get("/breakers")
    assert 'id="no-breakers"' in none.text
    store = RedisBreakerStore(sources.redis, key_prefix=key_prefix, timeout_s=2.0)
    config = CircuitBreakerConfig(failure_threshold=1, timeout_seconds=60)
    llm = CircuitBreaker("llm", config, store)

    async def boom() -> None:
        raise OSError("down")

    with pytest.raises(OSError, match="down"):
        await llm.call(boom)
    # The list fills in as views advance the scan (the real Redis may hold many keys).
    for _ in range(200):
        page = await http.get("/breakers")
        row = re.search(r'<tr id="breaker-llm">(.*?)</tr>', page.text, re.S)
        if row is not None:
            break
    assert row is not None
    assert "open" in row.group(1)


async def test_messages_page_without_a_store(client: Client) -> None:
    http = await client()
    page = await http.get("/messages", params={"id": "x"})
    assert page.status_code == 200
    assert 'id="no-store"' in page.text
    queues = await http.get("/queues")
    assert ">Messages<" not in queues.text
