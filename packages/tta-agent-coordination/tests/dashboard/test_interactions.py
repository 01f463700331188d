"""The meeting and conversation pages: list and page meetings, a meeting's detail and
history (live while open), organizations with their agents' unread inbox counts.

Everything is real: meetings are created, attended, started, spoken in and ended through
``AgentMessaging`` over the dashboard's own coordinator; inboxes fill through
``async_conversation.send``.
"""

from __future__ import annotations

import re

import pytest

from tta_agent_coordination.dashboard import DashboardSources, interaction_pages
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.interactions import AgentMessaging
from tta_agent_coordination.models import AgentId

from .conftest import Client

HOST = AgentId("host", "h1")
ALICE = AgentId("member", "alice")
BOB = AgentId("member", "bob")


@pytest.fixture
def messaging(sources: DashboardSources) -> AgentMessaging:
    return sources.interactions.messaging


async def directory(messaging: AgentMessaging) -> None:
    await messaging.register_organization("acme")
    for agent in (HOST, ALICE, BOB):
        await messaging.register_agent(agent, organization="acme")


async def meeting(messaging: AgentMessaging, meeting_id: str) -> str:
    return await messaging.meeting.create_meeting(
        HOST, [ALICE, BOB], turn_duration=30, meeting_id=meeting_id
    )


def meeting_ids(html: str) -> list[str]:
    return re.findall(r'<tr id="meeting-([^"]+)">', html)


async def test_meetings_page_lists_meetings_newest_first_with_their_turn(
    messaging: AgentMessaging, client: Client
) -> None:
    await directory(messaging)
    await meeting(messaging, "m1-old")
    await meeting(messaging, "m2-new")
    await messaging.meeting.attend_meeting(ALICE, "m2-new")
    await messaging.meeting.start_meeting(HOST, "m2-new", {"agenda": "plans"})
    http = await client(token=None)

    page = await http.get("/meetings")
    assert page.status_code == 200
    assert 'href="/meetings" class="on"' in page.text
    assert meeting_ids(page.text) == ["m2-new", "m1-old"]
    assert 'id="meeting-total">2<' in page.text
    row = re.search(r'<tr id="meeting-m2-new">(.*?)</tr>', page.text, re.S)
    assert row is not None
    assert "active" in row.group(1)
    assert str(ALICE) in row.group(1)  # the current speaker
    assert re.search(r'class="num">[0-9.]+s<', row.group(1))  # the turn's time left
    assert re.search(r'class="num">3<', row.group(1))  # host + two invited
    old = re.search(r'<tr id="meeting-m1-old">(.*?)</tr>', page.text, re.S)
    assert old is not None
    assert "created" in old.group(1)

    live = await http.get("/meetings", headers={"HX-Request": "true"})
    assert live.text.lstrip().startswith('<div id="live"')
    assert "<html" not in live.text


async def test_meetings_page_pages_through_the_index_without_repeats(
    messaging: AgentMessaging, client: Client
) -> None:
    await directory(messaging)
    made = [await meeting(messaging, f"m{n}") for n in range(5)]
    http = await client(token=None)

    seen: list[str] = []
    url = "/meetings?count=2"
    pages = 0
    while url:
        page = await http.get(url)
        assert page.status_code == 200
        seen += meeting_ids(page.text)
        found = re.search(r'id="older-meetings" href="([^"]+)"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else ""
        pages += 1
        assert pages <= 4
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(set(seen))


async def test_meetings_within_one_millisecond_page_by_skip(
    sources: DashboardSources, messaging: AgentMessaging
) -> None:
    # Same creation time for every meeting: the cursor's skip keeps pages apart.
    await directory(messaging)
    for n in range(3):
        await meeting(messaging, f"same{n}")
    index = messaging.keys.meetings_all
    await sources.redis.zadd(index, {f"same{n}": 1_000 for n in range(3)})
    pages = sources.interactions
    first = await pages.meetings(count=2)
    assert first.next_cursor == "1000:2"
    second = await pages.meetings(cursor=first.next_cursor, count=2)
    assert second.next_cursor is None
    ids = [r.status.meeting_id for r in first.rows + second.rows]
    assert sorted(ids) == ["same0", "same1", "same2"]


async def test_a_listed_meeting_that_is_gone_is_left_out(
    sources: DashboardSources, messaging: AgentMessaging, client: Client
) -> None:
    await directory(messaging)
    await meeting(messaging, "real")
    # What a crashed creation leaves: an id in the index without a meeting.
    await sources.redis.zadd(messaging.keys.meetings_all, {"ghost": 1})
    page = await (await client(token=None)).get("/meetings")
    assert meeting_ids(page.text) == ["real"]
    assert 'id="meeting-total">2<' in page.text


async def test_meeting_page_shows_participants_and_history_and_stops_refreshing_once_ended(
    messaging: AgentMessaging, client: Client
) -> None:
    await directory(messaging)
    mid = await meeting(messaging, "standup")
    await messaging.meeting.attend_meeting(ALICE, mid)
    http = await client(token=None)

    created = await http.get(f"/meetings/{mid}")
    assert created.status_code == 200
    assert 'id="meeting-status">created<' in created.text
    assert 'hx-trigger="every' in created.text  # live while not ended
    participants = re.search(r'<table id="participants">(.*?)</table>', created.text, re.S)
    assert participants is not None
    rows = participants.group(1)
    assert re.search(rf'participant-{re.escape(str(ALICE))}">.*?attending', rows, re.S)
    assert re.search(rf'participant-{re.escape(str(BOB))}">.*?invited', rows, re.S)

    await messaging.meeting.start_meeting(HOST, mid, {"agenda": "yesterday"})
    await messaging.meeting.speak(ALICE, mid, {"said": "shipped the dashboard"})
    live = await http.get(f"/meetings/{mid}", headers={"HX-Request": "true"})
    assert live.text.lstrip().startswith('<div id="live"')
    assert 'id="meeting-status">active<' in live.text
    assert "shipped the dashboard" in live.text
    assert "yesterday" in live.text
    assert 'id="meeting-speaker">' + str(HOST) in live.text  # round robin: back to the host

    await messaging.meeting.end_meeting(HOST, mid)
    ended = await http.get(f"/meetings/{mid}")
    assert 'id="meeting-status">ended<' in ended.text
    assert 'id="meeting-end-reason">Ended: host<' in ended.text
    assert 'hx-trigger="every' not in ended.text
    assert re.findall(r'<tr id="event-[^"]+" class="event">', ended.text)


async def test_meeting_history_pages_on_with_later_events(
    messaging: AgentMessaging, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tta_agent_coordination.dashboard import interaction_routes

    monkeypatch.setattr(interaction_routes, "HISTORY_PAGE", 2)
    await directory(messaging)
    mid = await meeting(messaging, "long")
    await messaging.meeting.attend_meeting(ALICE, mid)
    await messaging.meeting.start_meeting(HOST, mid, "hello")
    await messaging.meeting.speak(ALICE, mid, "one")
    http = await client(token=None)
    events = await messaging.meeting.get_meeting_history(mid)
    assert len(events) > 2

    first = await http.get(f"/meetings/{mid}")
    shown = re.findall(r'<tr id="event-([^"]+)" class="event">', first.text)
    assert shown == [e.event_id for e in events[:2]]
    later = re.search(r'id="later-events" href="([^"]+)"', first.text)
    assert later is not None
    second = await http.get(later.group(1))
    shown2 = re.findall(r'<tr id="event-([^"]+)" class="event">', second.text)
    assert shown2 == [e.event_id for e in events[2:4]]


async def test_meeting_page_errors(client: Client) -> None:
    http = await client(token=None)
    missing = await http.get("/meetings/nope")
    assert missing.status_code == 404
    assert "not found" in missing.text
    bad_id = await http.get("/meetings/%20bad%20id")
    assert bad_id.status_code == 400
    assert "invalid meeting id" in bad_id.text
    bad_cursor = await http.get("/meetings?cursor=yesterday")
    assert bad_cursor.status_code == 400
    assert "invalid meeting cursor" in bad_cursor.text
    bad_count = await http.get("/meetings?count=0")
    assert bad_count.status_code == 400


async def test_meeting_history_rejects_a_malformed_event_id(
    messaging: AgentMessaging, client: Client
) -> None:
    await directory(messaging)
    mid = await meeting(messaging, "m")
    page = await (await client(token=None)).get(f"/meetings/{mid}?after=latest")
    assert page.status_code == 400
    assert "invalid event id" in page.text


async def test_conversations_page_shows_organizations_agents_and_unread_counts(
    messaging: AgentMessaging, client: Client
) -> None:
    await directory(messaging)
    await messaging.register_organization("beta")
    await messaging.register_organization("empty")
    await messaging.register_agent(AgentId("beta", "b1"), organization="beta")
    for n in range(3):
        await messaging.async_conversation.send(ALICE, BOB, {"n": n})
    await messaging.async_conversation.send(BOB, ALICE, "hi")
    http = await client(token=None)

    page = await http.get("/conversations")
    assert page.status_code == 200
    assert 'href="/conversations" class="on"' in page.text
    assert 'id="organization-total">3<' in page.text
    assert re.findall(r'<h2 id="org-([^"]+)">', page.text) == ["acme", "beta", "empty"]
    assert re.search(rf'inbox-{re.escape(str(BOB))}"><td>[^<]+</td><td class="num">3<', page.text)
    assert re.search(rf'inbox-{re.escape(str(ALICE))}"><td>[^<]+</td><td class="num">1<', page.text)
    assert re.search(rf'inbox-{re.escape(str(HOST))}"><td>[^<]+</td><td class="num">0<', page.text)
    assert "(3 agents)" in page.text
    assert "No agents." in page.text  # the empty organization

    unread = await messaging.async_conversation.get_unread_messages(BOB)
    await messaging.async_conversation.mark_read(BOB, [m.message_id for m in unread])
    live = await http.get("/conversations", headers={"HX-Request": "true"})
    assert live.text.lstrip().startswith('<div id="live"')
    assert re.search(rf'inbox-{re.escape(str(BOB))}"><td>[^<]+</td><td class="num">0<', live.text)


async def test_conversations_page_pages_organizations_and_caps_agents(
    messaging: AgentMessaging, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(interaction_pages, "AGENTS_PER_ORGANIZATION", 3)
    for n in range(30):
        await messaging.register_organization(f"org{n:02d}")
    for n in range(7):
        await messaging.register_agent(AgentId("crowd", f"c{n}"), organization="org00")
    http = await client(token=None)

    seen: list[str] = []
    url = "/conversations?count=5"
    steps = 0
    while url:
        page = await http.get(url)
        assert page.status_code == 200
        seen += re.findall(r'<h2 id="org-([^"]+)">', page.text)
        if "org-org00" in page.text:
            assert "(7 agents, 3 shown)" in page.text
            assert len(re.findall(r'<tr id="inbox-crowd:', page.text)) == 3
        found = re.search(r'id="more-organizations" href="([^"]+)"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else ""
        steps += 1
        assert steps <= 40
    assert sorted(set(seen)) == [f"org{n:02d}" for n in range(30)]


async def test_conversations_page_rejects_a_bad_cursor(
    sources: DashboardSources, client: Client
) -> None:
    page = await (await client(token=None)).get("/conversations?cursor=abc")
    assert page.status_code == 400
    assert "invalid organization cursor" in page.text
    with pytest.raises(ConfigurationError):
        await sources.interactions.organizations(cursor="-1")


async def test_empty_pages_say_so(client: Client) -> None:
    http = await client(token=None)
    assert 'id="no-meetings"' in (await http.get("/meetings")).text
    assert 'id="no-organizations"' in (await http.get("/conversations")).text
