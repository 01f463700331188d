import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    CoordinationError,
    MessageContext,
    MessageType,
    MessageValidationError,
    PermanentError,
    RedisMessageCoordinator,
    RemoteHandlerError,
    RequestNotDeliveredError,
    RequestTimeoutError,
)
from tta_agent_coordination.runtime.rpc import (
    REPLY_INBOX_HEADER,
    REPLY_STATUS_HEADER,
    build_reply,
    raise_for_reply,
    reply_payload,
)

from .conftest import CLIENT, SERVER, eventually


class Echo(BaseModel):
    text: str
    length: int


@pytest.fixture
async def echo_worker(make_worker):
    worker = make_worker()

    @worker.on_request(kind="echo")
    async def echo(ctx: MessageContext[Any]) -> dict[str, Any]:
        return {"echo": ctx.payload["text"], "attempt": ctx.attempts}

    @worker.on_request(kind="model")
    async def as_model(ctx: MessageContext[Any]) -> Echo:
        return Echo(text=ctx.payload["text"], length=len(ctx.payload["text"]))

    @worker.on_request(kind="scalar")
    async def scalar(ctx: MessageContext[Any]) -> int:
        return 42

    @worker.on_request(kind="nothing")
    async def nothing(ctx: MessageContext[Any]) -> None:
        return None

    @worker.on_request(kind="refuse")
    async def refuse(ctx: MessageContext[Any]) -> None:
        raise PermanentError("no such room")

    @worker.on_request(kind="broken")
    async def broken(ctx: MessageContext[Any]) -> None:
        raise RuntimeError("the model is down")

    @worker.on_request(kind="slow")
    async def slow(ctx: MessageContext[Any]) -> dict[str, Any]:
        await asyncio.sleep(ctx.payload.get("seconds", 1.0))
        return {"late": True}

    async with worker:
        yield worker


async def test_request_returns_the_handlers_reply(coordinator, echo_worker):
    reply = await coordinator.request(CLIENT, SERVER, {"kind": "echo", "text": "hi"}, timeout=5)
    assert reply.message_type is MessageType.RESPONSE
    assert reply.payload == {"echo": "hi", "attempt": 1}
    assert reply.sender == SERVER
    assert reply.recipient == CLIENT
    assert reply.headers[REPLY_STATUS_HEADER] == "ok"


async def test_return_values_become_payloads(coordinator, echo_worker):
    model = await coordinator.request(CLIENT, SERVER, {"kind": "model", "text": "abc"}, timeout=5)
    assert model.payload == {"text": "abc", "length": 3}
    scalar = await coordinator.request(CLIENT, SERVER, {"kind": "scalar"}, timeout=5)
    assert scalar.payload == {"result": 42}
    nothing = await coordinator.request(CLIENT, SERVER, {"kind": "nothing"}, timeout=5)
    assert nothing.payload == {}


async def test_a_pydantic_payload_and_a_full_message_are_accepted(coordinator, echo_worker):
    class Ask(BaseModel):
        kind: str = "echo"
        text: str

    reply = await coordinator.request(CLIENT, SERVER, Ask(text="model"), timeout=5)
    assert reply.payload["echo"] == "model"

    message = AgentMessage(
        message_id="req-000123",
        sender=CLIENT,
        recipient=SERVER,
        message_type=MessageType.REQUEST,
        payload={"kind": "echo", "text": "full"},
    )
    reply = await coordinator.request(CLIENT, SERVER, message, timeout=5)
    assert reply.payload["echo"] == "full"
    assert reply.correlation_id == "req-000123"


async def test_permanent_error_reaches_the_requester(coordinator, echo_worker):
    with pytest.raises(RemoteHandlerError) as caught:
        await coordinator.request(CLIENT, SERVER, {"kind": "refuse"}, timeout=5)
    assert caught.value.error_type == "PermanentError"
    assert caught.value.remote_message == "no such room"
    assert caught.value.failure == "permanent"
    assert caught.value.recipient == str(SERVER)
    assert "no such room" in str(caught.value)


async def test_transient_error_is_reported_once_retries_run_out(coordinator, echo_worker):
    with pytest.raises(RemoteHandlerError) as caught:
        await coordinator.request(CLIENT, SERVER, {"kind": "broken"}, timeout=10)
    assert caught.value.error_type == "RuntimeError"
    assert caught.value.failure == "transient"
    # The reply goes out before the nack: wait for the worker to settle the message.
    await eventually(lambda: echo_worker.stats.dead_lettered == 1)
    assert echo_worker.stats.retried == 2


async def test_invalid_payload_and_missing_handler_are_remote_errors(coordinator, echo_worker):
    with pytest.raises(RemoteHandlerError) as caught:
        await coordinator.request(CLIENT, SERVER, {"kind": "unknown"}, timeout=5)
    assert caught.value.error_type == "PermanentError"
    assert "no handler" in caught.value.remote_message


async def test_timeout_raises_and_the_unhandled_request_expires(coordinator):
    nobody = AgentId("nobody")
    with pytest.raises(RequestTimeoutError) as caught:
        await coordinator.request(CLIENT, nobody, {"q": 1}, timeout=0.3)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.recipient == str(nobody)
    # Nobody waits for the answer any more: the request is dead-lettered, not handled.
    assert await coordinator.receive(nobody) is None
    [letter] = await coordinator.dead_letters(nobody)
    assert letter.message.payload == {"q": 1}


async def test_late_reply_is_dropped_and_the_inbox_expires(
    coordination_redis, key_prefix, make_worker
):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, reply_ttl_s=0.5)
    worker = make_worker(coordinator=coord, registry=None)

    @worker.on_request()
    async def slow(ctx: MessageContext[Any]) -> dict[str, Any]:
        await asyncio.sleep(0.5)
        return {"late": True}

    try:
        async with worker:
            with pytest.raises(RequestTimeoutError):
                await coord.request(CLIENT, SERVER, {}, timeout=0.2, expire=False)
            await eventually(lambda: worker.stats.replies == 1)
        inbox = coord.keys.reply_inbox(coord._replies().inbox_id)
        ttl = await coordination_redis.pttl(inbox)
        assert ttl == -2 or 0 < ttl <= 500
        await eventually(lambda: _gone(coordination_redis, inbox), timeout=5)
    finally:
        await coord.aclose()


async def _gone(client, key: str) -> bool:
    return not await client.exists(key)


async def test_many_concurrent_requests_each_get_their_own_reply(coordinator, echo_worker):
    replies = await asyncio.gather(
        *(
            coordinator.request(CLIENT, SERVER, {"kind": "echo", "text": f"t{i}"}, timeout=10)
            for i in range(60)
        )
    )
    assert [r.payload["echo"] for r in replies] == [f"t{i}" for i in range(60)]
    assert coordinator._replies().pending == 0


async def test_full_queue_raises_not_delivered(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, queue_size=1)
    try:
        await coord.send_message(
            CLIENT,
            SERVER,
            AgentMessage(sender=CLIENT, recipient=SERVER, message_type=MessageType.EVENT),
        )
        with pytest.raises(RequestNotDeliveredError, match="queue full"):
            await coord.request(CLIENT, SERVER, {"q": 1}, timeout=2)
        assert coord._replies().pending == 0
    finally:
        await coord.aclose()


async def test_bad_requests_are_refused_before_sending(coordinator):
    mismatched = AgentMessage(sender=SERVER, recipient=CLIENT, message_type=MessageType.REQUEST)
    with pytest.raises(MessageValidationError):
        await coordinator.request(CLIENT, SERVER, mismatched, timeout=1)
    with pytest.raises(MessageValidationError):
        await coordinator.request(CLIENT, SERVER, ["not", "a", "payload"], timeout=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        await coordinator.request(CLIENT, SERVER, {}, timeout=0)
    assert (await coordinator.queue_stats(SERVER)).unsettled == 0


async def test_nested_requests_through_the_context(coordinator, make_worker):
    front = make_worker(AgentId("front"))
    back = make_worker(AgentId("back"))

    @front.on_request()
    async def ask_back(ctx: MessageContext[Any]) -> dict[str, Any]:
        inner = await ctx.request(AgentId("back"), {"n": ctx.payload["n"]}, timeout=5)
        return {"doubled": inner.payload["result"]}

    @back.on_request()
    async def double(ctx: MessageContext[Any]) -> int:
        return ctx.payload["n"] * 2

    async with front, back:
        reply = await coordinator.request(CLIENT, AgentId("front"), {"n": 21}, timeout=5)
    assert reply.payload == {"doubled": 42}


async def test_close_fails_waiting_requests(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    waiting = asyncio.create_task(coord.request(CLIENT, SERVER, {}, timeout=30))
    await eventually(lambda: coord._replies().pending == 1)
    await coord.aclose()
    with pytest.raises(CoordinationError, match="closed"):
        await waiting
    with pytest.raises(CoordinationError, match="closed"):
        await coord.request(CLIENT, SERVER, {}, timeout=1)


async def test_reply_is_refused_for_messages_that_expect_none(coordinator):
    event = AgentMessage(sender=CLIENT, recipient=SERVER, message_type=MessageType.EVENT)
    assert not await coordinator.reply(SERVER, event, {"x": 1})
    bare_request = AgentMessage(sender=CLIENT, recipient=SERVER, message_type=MessageType.REQUEST)
    assert not await coordinator.reply(SERVER, bare_request, {"x": 1})


def test_reply_helpers():
    request = AgentMessage(
        message_id="req-abcdef",
        sender=CLIENT,
        recipient=SERVER,
        message_type=MessageType.REQUEST,
        headers={REPLY_INBOX_HEADER: "inbox"},
    )
    ok = build_reply(request, SERVER, {"a": 1})
    assert ok.correlation_id == "req-abcdef"
    assert ok.message_id == build_reply(request, SERVER, {"b": 2}).message_id  # stable id
    assert raise_for_reply(ok) is ok
    failed = build_reply(request, SERVER, error=ValueError("bad"))
    with pytest.raises(RemoteHandlerError, match="ValueError: bad"):
        raise_for_reply(failed)
    malformed = failed.model_copy(update={"payload": {"error": "text"}})
    with pytest.raises(RemoteHandlerError, match="Error"):
        raise_for_reply(malformed)
    assert reply_payload([1, 2]) == {"result": [1, 2]}
    assert reply_payload({"k": "v"}) == {"k": "v"}
