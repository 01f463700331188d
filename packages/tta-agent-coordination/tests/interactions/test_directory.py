import pytest

from tta_agent_coordination.errors import ConfigurationError, CoordinatorUnavailableError
from tta_agent_coordination.interactions import (
    AgentMessaging,
    AgentMessagingError,
    AgentNotFoundError,
    CrossOrganizationError,
    OrganizationNotFoundError,
)
from tta_agent_coordination.models import AgentId

from .conftest import ALICE, BOB, CAROL


async def test_organizations_and_agents_round_trip(messaging: AgentMessaging) -> None:
    org = await messaging.get_organization("acme")
    assert org.name == "Acme"
    assert org.created_at is not None
    profile = await messaging.get_agent(BOB)
    assert profile.organization == "acme"
    assert profile.name == str(BOB)
    assert await messaging.list_agents("acme") == sorted([ALICE, BOB, CAROL], key=str)
    assert "acme" in await messaging.directory.list_organizations()


async def test_unknown_names_raise_typed_errors(messaging: AgentMessaging) -> None:
    with pytest.raises(OrganizationNotFoundError):
        await messaging.get_organization("nope")
    with pytest.raises(AgentNotFoundError):
        await messaging.get_agent(AgentId("ghost", "g1"))
    with pytest.raises(OrganizationNotFoundError):
        await messaging.register_agent(AgentId("x", "1"), organization="nope")
    with pytest.raises(OrganizationNotFoundError):
        await messaging.list_agents("nope")
    with pytest.raises(ConfigurationError):
        await messaging.register_organization("{bad}")
    assert issubclass(AgentNotFoundError, AgentMessagingError)


async def test_agent_moves_between_organizations(messaging: AgentMessaging) -> None:
    await messaging.register_organization("globex")
    await messaging.register_agent(CAROL, organization="globex", name="Carol")
    assert CAROL not in await messaging.list_agents("acme")
    assert await messaging.list_agents("globex") == [CAROL]
    assert (await messaging.get_agent(CAROL)).name == "Carol"


async def test_organizations_are_namespaces(messaging: AgentMessaging) -> None:
    other = AgentId("vendor", "v1")
    await messaging.register_organization("globex")
    await messaging.register_agent(other, organization="globex")
    with pytest.raises(CrossOrganizationError):
        await messaging.one_way.send(ALICE, other, {"hi": 1})
    with pytest.raises(CrossOrganizationError):
        await messaging.async_conversation.send(other, ALICE, "hello")
    # globex accepts acme: acme may now address globex, not the other way round.
    await messaging.register_organization("globex", accepts_from=["acme"])
    message = await messaging.async_conversation.send(ALICE, other, "hello")
    assert message.payload == "hello"
    with pytest.raises(CrossOrganizationError):
        await messaging.async_conversation.send(other, ALICE, "hello")


async def test_unregistered_sender_or_recipient(messaging: AgentMessaging) -> None:
    ghost = AgentId("ghost", "g1")
    with pytest.raises(AgentNotFoundError):
        await messaging.one_way.send(ghost, BOB, {})
    with pytest.raises(AgentNotFoundError):
        await messaging.sync_conversation.send_and_wait(ALICE, ghost, {}, timeout=1)


async def test_settings_are_checked(coordinator) -> None:
    with pytest.raises(ConfigurationError):
        AgentMessaging(coordinator, log_cap=0)
    with pytest.raises(ConfigurationError):
        AgentMessaging(coordinator, handler_visibility_timeout=-1)


async def test_register_rereads_an_organization_moved_meanwhile(
    messaging: AgentMessaging, monkeypatch: pytest.MonkeyPatch
) -> None:
    await messaging.register_organization("globex")
    real_hget = messaging.redis.hget
    calls = 0

    async def stale_first(key: str, field: str):  # as if another process moved it
        nonlocal calls
        calls += 1
        return "elsewhere" if calls == 1 else await real_hget(key, field)

    monkeypatch.setattr(messaging.redis, "hget", stale_first)
    profile = await messaging.register_agent(BOB, organization="globex")
    assert profile.organization == "globex"
    assert calls == 2
    assert BOB not in await messaging.list_agents("acme")


async def test_register_gives_up_when_the_agent_keeps_moving(
    messaging: AgentMessaging, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def always_stale(key: str, field: str):
        return "elsewhere"

    monkeypatch.setattr(messaging.redis, "hget", always_stale)
    with pytest.raises(CoordinatorUnavailableError, match="kept moving"):
        await messaging.register_agent(BOB, organization="acme")
