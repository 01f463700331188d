"""The reply inbox as a public address (issue 14 §3): route replies to it, await them.

Other modules (conversations, meetings, plans) put ``coordinator.reply_inbox`` in what
they send, deliver replies to such an address from any process, and await a reply by
correlation id. Runs on FakeRedis and the real Redis.
"""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from tta_agent_coordination.errors import (
    CoordinationError,
    MessageValidationError,
    RemoteHandlerError,
    RequestTimeoutError,
)
from tta_agent_coordination.models import AgentMessage, MessageType
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.replies import (
    REPLY_INBOX_HEADER,
    REPLY_TTL_HEADER,
    ReplyAddress,
    build_reply,
    raise_for_reply,
)

from .conftest import RECIPIENT, SENDER, make_message


@pytest.fixture
async def other(coordination_redis, key_prefix):
    """A second coordinator on the same prefix: another process, say."""
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    yield coord
    await coord.aclose()


def test_an_address_is_a_serialisable_value_naming_its_headers():
    address = ReplyAddress(inbox="abc-1.x_y", ttl_ms=1500)
    assert ReplyAddress.model_validate_json(address.model_dump_json()) == address
    assert address.headers() == {REPLY_INBOX_HEADER: "abc-1.x_y", REPLY_TTL_HEADER: "1500"}
    assert ReplyAddress.from_headers(address.headers()) == address
    assert ReplyAddress.from_headers({REPLY_INBOX_HEADER: "abc"}, 7) == ReplyAddress(
        inbox="abc", ttl_ms=7
    )
    assert ReplyAddress.from_headers({"other": "x"}) is None


@pytest.mark.parametrize("inbox", ["", "a}b", "x{y", "a b", "*", "a" * 129])
def test_an_inbox_that_could_leave_its_key_is_refused(inbox: str):
    with pytest.raises(ValidationError, match="invalid reply inbox id"):
        ReplyAddress(inbox=inbox)
    with pytest.raises(MessageValidationError, match="invalid reply address"):
        ReplyAddress.from_headers({REPLY_INBOX_HEADER: inbox})


def test_a_non_positive_or_non_numeric_ttl_is_refused():
    with pytest.raises(ValidationError):
        ReplyAddress(inbox="a", ttl_ms=0)
    with pytest.raises(MessageValidationError):
        ReplyAddress.from_headers({REPLY_INBOX_HEADER: "a", REPLY_TTL_HEADER: "soon"})


async def test_the_inbox_of_a_coordinator_is_stable_and_its_own(coordinator, other):
    address = coordinator.reply_inbox
    assert coordinator.reply_inbox == address
    assert other.reply_inbox != address
    assert address.ttl_ms == 60_000


async def test_a_reply_delivered_from_elsewhere_is_matched_by_correlation_id(
    coordinator: RedisMessageCoordinator, other: RedisMessageCoordinator
):
    pending = coordinator.expect_reply("conv-1")
    stray = make_message(9, correlation_id="conv-unknown")
    reply = make_message(1, correlation_id="conv-1")
    await other.deliver_reply(coordinator.reply_inbox, stray)
    await other.deliver_reply(coordinator.reply_inbox, reply)
    got = await pending.wait(5)
    assert got.message_id == reply.message_id
    assert got.payload == {"n": 1}
    pending.close()
    pending.close()  # idempotent


async def test_a_worker_reply_is_routed_to_an_address_put_in_a_request(
    coordinator: RedisMessageCoordinator, other: RedisMessageCoordinator
):
    # A module (a conversation, say) asks an agent and routes the answer to its inbox.
    request = AgentMessage(
        sender=SENDER,
        recipient=RECIPIENT,
        message_type=MessageType.REQUEST,
        payload={"q": "weather?"},
        correlation_id="turn-7",
        headers=coordinator.reply_inbox.headers(),
    )
    async with coordinator.expect_reply("turn-7", RECIPIENT) as pending:
        assert (await coordinator.send_message(SENDER, RECIPIENT, request)).delivered
        # The agent's side, in another process: receive, answer, ack.
        got = await other.receive(RECIPIENT, visibility_timeout=30)
        assert got is not None
        assert await other.reply(RECIPIENT, got.message, {"a": "rain"})
        assert await other.ack(RECIPIENT, got.token)
        reply = await pending.wait(5)
    assert (reply.correlation_id, reply.sender, reply.payload) == (
        "turn-7",
        RECIPIENT,
        {"a": "rain"},
    )
    # an error reply comes as it is; raise_for_reply turns it into the exception
    async with coordinator.expect_reply("turn-8") as pending:
        failing = request.model_copy(update={"correlation_id": "turn-8"})
        await other.deliver_reply(
            coordinator.reply_inbox, build_reply(failing, RECIPIENT, error=ValueError("no"))
        )
        with pytest.raises(RemoteHandlerError, match="ValueError: no"):
            raise_for_reply(await pending.wait(5))


async def test_a_wait_that_times_out_may_wait_again(
    coordinator: RedisMessageCoordinator, other: RedisMessageCoordinator
):
    async with coordinator.expect_reply("late-1", RECIPIENT) as pending:
        with pytest.raises(RequestTimeoutError) as caught:
            await pending.wait(0.05)
        assert (caught.value.correlation_id, caught.value.recipient) == ("late-1", str(RECIPIENT))
        reply = make_message(2, correlation_id="late-1")
        await other.deliver_reply(coordinator.reply_inbox, reply)
        assert (await pending.wait(5)).message_id == reply.message_id


async def test_one_waiter_per_correlation_id(coordinator: RedisMessageCoordinator):
    first = coordinator.expect_reply("dup-1")
    with pytest.raises(MessageValidationError, match="already waiting"):
        coordinator.expect_reply("dup-1")
    first.close()
    with pytest.raises(asyncio.CancelledError):
        await first.wait(1)
    second = coordinator.expect_reply("dup-1")  # free again once closed
    second.close()
    with pytest.raises(Exception, match="timeout must be > 0"):
        await coordinator.expect_reply("t").wait(0)


async def test_closing_fails_waiters_and_refuses_new_ones(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    pending = coord.expect_reply("closing-1")
    await coord.aclose()
    with pytest.raises(CoordinationError, match="closed while request 'closing-1' waited"):
        await pending.wait(1)
    pending.close()
    with pytest.raises(CoordinationError, match="closed"):
        coord.expect_reply("closing-2")


async def test_a_reply_to_a_request_naming_a_bad_inbox_is_refused(
    coordinator: RedisMessageCoordinator,
):
    # Another client's header must not name a key outside the reply inbox space.
    request = make_message(1, headers={REPLY_INBOX_HEADER: "x}:ready:5{y"})
    with pytest.raises(MessageValidationError, match="invalid reply address"):
        await coordinator.reply(RECIPIENT, request, {"ok": 1})
