"""Request/reply: the message format (``replies.py``), the requester's inbox
(``redis/reply_router.py``) and the whole round trip through a coordinator and a worker.

The reply format is read by other processes: the status header, the error fields and
the reply id (which makes a redelivered request's reply deduplicate) are pinned here.
``ReplyRouter`` is first driven through injected Redis calls (no server, no worker).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from pydantic import BaseModel
from structlog.testing import capture_logs

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    CoordinationError,
    MessageContext,
    MessagePriority,
    MessageResult,
    MessageType,
    PermanentError,
    RedisMessageCoordinator,
)
from tta_agent_coordination.errors import (
    ConfigurationError,
    MessageValidationError,
    RemoteHandlerError,
    RequestNotDeliveredError,
    RequestTimeoutError,
)
from tta_agent_coordination.models import FailureType
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.reply_router import ReplyRouter
from tta_agent_coordination.replies import (
    REPLY_INBOX_HEADER,
    REPLY_STATUS_HEADER,
    REPLY_TTL_HEADER,
    build_message,
    build_reply,
    expects_reply,
    raise_for_reply,
    reply_payload,
)

from .conftest import eventually

CLIENT = AgentId("client", "c1")
SERVER = AgentId("server", "s1")
OTHER = AgentId("other", "o1")


class Point(BaseModel):
    x: int
    at: datetime


def test_header_names() -> None:
    assert REPLY_INBOX_HEADER == "tta-reply-inbox"
    assert REPLY_TTL_HEADER == "tta-reply-ttl-ms"
    assert REPLY_STATUS_HEADER == "tta-reply-status"


# --- reply_payload / build_message ----------------------------------------------------


def test_reply_payload_of_each_kind_of_result() -> None:
    assert reply_payload(None) == {}
    assert reply_payload({}) == {}
    assert reply_payload({1: "a", "b": [2]}) == {"1": "a", "b": [2]}
    moment = datetime(2026, 12, 1, tzinfo=UTC)
    assert reply_payload(Point(x=1, at=moment)) == {"x": 1, "at": "2026-12-01T00:00:00Z"}
    assert reply_payload(0) == {"result": 0}
    assert reply_payload(False) == {"result": False}
    assert reply_payload("") == {"result": ""}
    assert reply_payload([1]) == {"result": [1]}


def test_build_message_from_a_payload() -> None:
    headers = {"h": "v"}
    built = build_message(
        CLIENT,
        SERVER,
        {"k": 1},
        MessageType.EVENT,
        priority=MessagePriority.HIGH,
        correlation_id="corr",
        headers=headers,
    )
    assert (built.sender, built.recipient, built.message_type) == (
        CLIENT,
        SERVER,
        MessageType.EVENT,
    )
    assert built.payload == {"k": 1}
    assert built.priority is MessagePriority.HIGH
    assert built.correlation_id == "corr"
    assert built.headers == {"h": "v"}
    headers["h"] = "changed"
    assert built.headers == {"h": "v"}  # a copy


def test_build_message_defaults_and_models() -> None:
    moment = datetime(2026, 12, 1, tzinfo=UTC)
    built = build_message(CLIENT, SERVER, Point(x=2, at=moment), MessageType.REQUEST)
    assert built.payload == {"x": 2, "at": "2026-12-01T00:00:00Z"}
    assert built.message_type is MessageType.REQUEST
    assert built.priority is MessagePriority.NORMAL
    assert built.correlation_id is None
    assert built.headers == {}
    assert build_message(CLIENT, SERVER, cast(Any, {2: 3}), MessageType.EVENT).payload == {"2": 3}


def test_build_message_refuses_other_payloads() -> None:
    with pytest.raises(MessageValidationError) as caught:
        build_message(CLIENT, SERVER, cast(Any, [1]), MessageType.EVENT)
    assert str(caught.value) == "a payload must be a dict or a pydantic model, got list"


def test_build_message_returns_a_matching_message_and_refuses_a_mismatch() -> None:
    ready = AgentMessage(
        message_id="msg-000042", sender=CLIENT, recipient=SERVER, message_type=MessageType.EVENT
    )
    assert build_message(CLIENT, SERVER, ready, MessageType.REQUEST) is ready
    for sender, recipient in ((OTHER, SERVER), (CLIENT, OTHER), (SERVER, CLIENT)):
        with pytest.raises(MessageValidationError) as caught:
            build_message(sender, recipient, ready, MessageType.EVENT)
        assert str(caught.value) == (
            f"message 'msg-000042' goes from client:c1 to server:s1, not from "
            f"{sender} to {recipient}"
        )


# --- expects_reply ------------------------------------------------------------------


def test_expects_reply_only_for_requests_with_somewhere_to_answer() -> None:
    def make(mtype: MessageType, **fields: Any) -> AgentMessage:
        return AgentMessage(sender=CLIENT, recipient=SERVER, message_type=mtype, **fields)

    inbox = {"headers": {REPLY_INBOX_HEADER: "i"}}
    assert expects_reply(make(MessageType.REQUEST, **inbox))
    assert expects_reply(make(MessageType.REQUEST, reply_to=OTHER))
    assert expects_reply(make(MessageType.REQUEST, reply_to=OTHER, **inbox))
    assert not expects_reply(make(MessageType.REQUEST))
    assert not expects_reply(make(MessageType.REQUEST, headers={"other": "i"}))
    assert not expects_reply(make(MessageType.EVENT, reply_to=OTHER, **inbox))
    assert not expects_reply(make(MessageType.RESPONSE, reply_to=OTHER, **inbox))


# --- build_reply / raise_for_reply ---------------------------------------------------


def request_message(**fields: Any) -> AgentMessage:
    fields.setdefault("message_id", "req-000001")
    return AgentMessage(sender=CLIENT, recipient=SERVER, message_type=MessageType.REQUEST, **fields)


def test_a_successful_reply() -> None:
    request = request_message(priority=MessagePriority.LOW, headers={REPLY_INBOX_HEADER: "i"})
    reply = build_reply(request, SERVER, {"a": 1})
    assert reply.message_type is MessageType.RESPONSE
    assert reply.sender == SERVER
    assert reply.recipient == CLIENT  # no reply_to: the sender
    assert reply.payload == {"a": 1}
    assert reply.priority is MessagePriority.LOW
    assert reply.correlation_id == "req-000001"
    assert reply.headers == {REPLY_STATUS_HEADER: "ok"}
    assert build_reply(request, SERVER).payload == {}
    assert build_reply(request, SERVER, 5).payload == {"result": 5}


def test_the_reply_id_is_derived_from_the_request_id() -> None:
    first = build_reply(request_message(), SERVER, {"a": 1}).message_id
    assert re.fullmatch(r"reply-[0-9a-f]{32}", first)
    assert first == "reply-7a0a3c5ca45eb21cf8904e92c1c5f72d"  # sha256 of the id, 32 digits
    assert build_reply(request_message(), OTHER, error=ValueError()).message_id == first
    other = build_reply(request_message(message_id="req-000002"), SERVER).message_id
    assert other != first
    assert re.fullmatch(r"reply-[0-9a-f]{32}", other)


def test_reply_goes_to_reply_to_with_the_requests_correlation_id() -> None:
    request = request_message(reply_to=OTHER, correlation_id="corr-9")
    reply = build_reply(request, SERVER)
    assert reply.recipient == OTHER
    assert reply.correlation_id == "corr-9"


def test_an_error_reply() -> None:
    reply = build_reply(request_message(), SERVER, {"ignored": 1}, error=KeyError("room"))
    assert reply.headers == {REPLY_STATUS_HEADER: "error"}
    assert reply.payload == {
        "error": {"type": "KeyError", "message": "'room'", "failure": "permanent"}
    }
    timed_out = build_reply(
        request_message(), SERVER, error=TimeoutError("slow"), failure=FailureType.TIMEOUT
    )
    assert timed_out.payload == {
        "error": {"type": "TimeoutError", "message": "slow", "failure": "timeout"}
    }
    with pytest.raises(RemoteHandlerError) as caught:
        raise_for_reply(timed_out)
    error = caught.value
    assert (error.recipient, error.error_type, error.remote_message, error.failure) == (
        "server:s1",
        "TimeoutError",
        "slow",
        "timeout",
    )
    assert str(error) == "server:s1 failed the request (timeout): TimeoutError: slow"


def test_raise_for_reply_passes_anything_but_an_error_status() -> None:
    plain = AgentMessage(sender=SERVER, recipient=CLIENT, message_type=MessageType.RESPONSE)
    assert raise_for_reply(plain) is plain
    ok = plain.model_copy(update={"headers": {REPLY_STATUS_HEADER: "ok"}})
    assert raise_for_reply(ok) is ok
    odd = plain.model_copy(
        update={"headers": {REPLY_STATUS_HEADER: "ERROR"}, "payload": {"error": {}}}
    )
    assert raise_for_reply(odd) is odd


@pytest.mark.parametrize("error", [None, "text", {}, {"unrelated": 1}])
def test_an_error_reply_without_details_gets_defaults(error: Any) -> None:
    payload = {} if error is None else {"error": error}
    reply = AgentMessage(
        sender=SERVER,
        recipient=CLIENT,
        message_type=MessageType.RESPONSE,
        payload=payload,
        headers={REPLY_STATUS_HEADER: "error"},
    )
    with pytest.raises(RemoteHandlerError) as caught:
        raise_for_reply(reply)
    assert (caught.value.error_type, caught.value.remote_message, caught.value.failure) == (
        "Error",
        "",
        "permanent",
    )


def test_error_details_are_turned_into_text() -> None:
    reply = AgentMessage(
        sender=SERVER,
        recipient=CLIENT,
        message_type=MessageType.RESPONSE,
        payload={"error": {"type": 1, "message": 2, "failure": 3}},
        headers={REPLY_STATUS_HEADER: "error"},
    )
    with pytest.raises(RemoteHandlerError) as caught:
        raise_for_reply(reply)
    assert (caught.value.error_type, caught.value.remote_message, caught.value.failure) == (
        "1",
        "2",
        "3",
    )


# --- ReplyRouter, with injected Redis calls -------------------------------------------


class FakeInbox:
    """The two list commands the router reads its inbox with, over in-memory lists."""

    def __init__(self) -> None:
        self.lists: dict[str, list[Any]] = {}
        self.blpops: list[tuple[list[str], float]] = []
        self.lpops: list[tuple[str, int]] = []
        self.failures: list[BaseException] = []

    async def blpop(self, keys: list[str], timeout: float) -> Any:  # noqa: ASYNC109 - redis API
        self.blpops.append((keys, timeout))
        if self.failures:
            raise self.failures.pop(0)
        for key in keys:
            if self.lists.get(key):
                return [key.encode(), self.lists[key].pop(0)]
        await asyncio.sleep(0.01)
        return None

    async def lpop(self, key: str, count: int) -> Any:
        self.lpops.append((key, count))
        items, self.lists[key] = self.lists[key][:count], self.lists[key][count:]
        return items or None


class FakeScripts:
    def __init__(self) -> None:
        self.runs: list[tuple[str, list[str | bytes], list[Any]]] = []

    async def call(self, call: ScriptCall[Any]) -> Any:
        self.runs.append((call.name, list(call.keys), list(call.argv)))
        return call.parse(1)


class Harness:
    def __init__(self, *, reply_ttl_s: float | None = None, delivered: bool = True) -> None:
        self.redis = FakeInbox()
        self.keys = KeySpace("t")
        self.scripts = FakeScripts()
        self.calls: list[str] = []
        self.sent: list[tuple[AgentId, AgentId, AgentMessage]] = []
        self.delivered = delivered
        self.answer: Callable[[AgentMessage], AgentMessage | None] | None = None
        options: dict[str, Any] = {} if reply_ttl_s is None else {"reply_ttl_s": reply_ttl_s}
        self.router = ReplyRouter(
            cast(Any, self.redis),
            self.keys,
            cast(Any, self.scripts),
            self.call,
            self.send,
            **options,
        )

    async def call(self, operation: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        self.calls.append(operation)
        return await fn()

    async def send(self, sender: AgentId, recipient: AgentId, message: AgentMessage) -> Any:
        self.sent.append((sender, recipient, message))
        if not self.delivered:
            return MessageResult(message_id=message.message_id, delivered=False, error="full")
        if self.answer is not None:
            reply = self.answer(message)
            if reply is not None:
                self.push(reply)
        return MessageResult(message_id=message.message_id, delivered=True)

    def push(self, reply: AgentMessage | str) -> None:
        raw = reply if isinstance(reply, str) else reply.model_dump_json()
        self.redis.lists.setdefault(self.router_inbox, []).append(raw.encode())

    @property
    def router_inbox(self) -> str:
        return self.keys.reply_inbox(self.router.inbox_id)


@pytest.mark.parametrize("ttl", [0, -1.0])
def test_router_refuses_a_non_positive_ttl(ttl: float) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Harness(reply_ttl_s=ttl)
    assert str(caught.value) == f"reply_ttl_s must be > 0, got {ttl}"


def test_router_inbox_id_is_random_hex() -> None:
    first, second = Harness().router, Harness().router
    assert re.fullmatch(r"[0-9a-f]{32}", first.inbox_id)
    assert first.inbox_id != second.inbox_id
    assert first.pending == 0


async def test_a_request_carries_its_inbox_and_ttl_and_gets_its_reply() -> None:
    harness = Harness(reply_ttl_s=2.5)
    harness.answer = lambda request: build_reply(request, SERVER, {"ok": True})
    before = datetime.now(UTC)
    reply = await harness.router.request(
        CLIENT,
        SERVER,
        {"q": 1},
        timeout=3,
        priority=MessagePriority.HIGH,
        headers={"trace": "t1"},
    )
    assert reply.payload == {"ok": True}
    assert harness.router.pending == 0
    [(sender, recipient, sent)] = harness.sent
    assert (sender, recipient) == (CLIENT, SERVER)
    assert sent.message_type is MessageType.REQUEST
    assert sent.payload == {"q": 1}
    assert sent.priority is MessagePriority.HIGH
    assert sent.correlation_id == sent.message_id
    assert sent.reply_to == CLIENT
    assert sent.headers == {
        "trace": "t1",
        REPLY_INBOX_HEADER: harness.router.inbox_id,
        REPLY_TTL_HEADER: "2500",
    }
    assert sent.expires_at is not None
    assert before + timedelta(seconds=3) <= sent.expires_at
    assert sent.expires_at <= datetime.now(UTC) + timedelta(seconds=3)
    assert harness.redis.blpops[0] == ([harness.router_inbox], 1.0)
    # The only request got its reply from the blocking pop: no drain, one round trip.
    assert harness.redis.lpops == []
    assert set(harness.calls) == {"request"}
    reader = harness.router._reader  # pyright: ignore[reportPrivateUsage]
    assert reader is not None
    await asyncio.wait_for(reader, 1)  # no request waits: the reader stops by itself


async def test_a_ready_request_keeps_its_correlation_id_reply_to_and_expiry() -> None:
    harness = Harness()
    harness.answer = lambda request: build_reply(request, SERVER, 7)
    expiry = datetime(2030, 1, 1, tzinfo=UTC)
    ready = AgentMessage(
        message_id="req-000777",
        sender=CLIENT,
        recipient=SERVER,
        message_type=MessageType.EVENT,
        correlation_id="corr-7",
        reply_to=OTHER,
        headers={"a": "1", REPLY_INBOX_HEADER: "overwritten"},
        expires_at=expiry,
    )
    reply = await harness.router.request(CLIENT, SERVER, ready, timeout=3)
    assert reply.payload == {"result": 7}
    assert reply.correlation_id == "corr-7"
    sent = harness.sent[0][2]
    assert sent.message_type is MessageType.REQUEST
    assert (sent.message_id, sent.correlation_id, sent.reply_to) == (
        "req-000777",
        "corr-7",
        OTHER,
    )
    assert sent.expires_at == expiry
    assert sent.headers == {
        "a": "1",
        REPLY_INBOX_HEADER: harness.router.inbox_id,
        REPLY_TTL_HEADER: "60000",  # the default reply_ttl_s: one minute
    }


async def test_without_expire_the_request_has_no_expiry() -> None:
    harness = Harness()
    harness.answer = lambda request: build_reply(request, SERVER)
    await harness.router.request(CLIENT, SERVER, {}, timeout=3, expire=False)
    assert harness.sent[0][2].expires_at is None


def test_the_ttl_header_is_whole_milliseconds_at_least_one() -> None:
    assert Harness(reply_ttl_s=0.0001).router._ttl_ms == "1"  # pyright: ignore[reportPrivateUsage]
    assert Harness(reply_ttl_s=1.2345).router._ttl_ms == "1234"  # pyright: ignore[reportPrivateUsage]
    assert Harness(reply_ttl_s=0.0016).router._ttl_ms == "2"  # pyright: ignore[reportPrivateUsage]


async def test_an_error_reply_is_raised_at_the_requester() -> None:
    harness = Harness()
    harness.answer = lambda request: build_reply(request, SERVER, error=ValueError("no"))
    with pytest.raises(RemoteHandlerError, match="ValueError: no"):
        await harness.router.request(CLIENT, SERVER, {}, timeout=3)
    assert harness.router.pending == 0


async def test_an_undelivered_request_fails_at_once() -> None:
    harness = Harness(delivered=False)
    with pytest.raises(RequestNotDeliveredError) as caught:
        await harness.router.request(CLIENT, SERVER, {}, timeout=3)
    assert caught.value.recipient == "server:s1"
    assert caught.value.reason == "full"
    assert caught.value.correlation_id == harness.sent[0][2].message_id
    assert harness.router.pending == 0


async def test_a_request_without_a_reply_times_out() -> None:
    harness = Harness()
    with pytest.raises(RequestTimeoutError) as caught:
        await harness.router.request(CLIENT, SERVER, {}, timeout=0.05)
    assert caught.value.recipient == "server:s1"
    assert caught.value.timeout == 0.05
    assert caught.value.correlation_id == harness.sent[0][2].message_id
    assert harness.router.pending == 0


@pytest.mark.parametrize("timeout", [0, -1.0])
async def test_a_non_positive_timeout_is_refused(timeout: float) -> None:  # noqa: ASYNC109
    harness = Harness()
    with pytest.raises(ConfigurationError) as caught:
        await harness.router.request(CLIENT, SERVER, {}, timeout=timeout)
    assert str(caught.value) == f"timeout must be > 0 seconds, got {timeout}"
    assert harness.sent == []


async def test_a_second_request_with_a_waiting_correlation_id_is_refused() -> None:
    harness = Harness()
    first = asyncio.create_task(
        harness.router.request(CLIENT, SERVER, {"correlation": 1}, timeout=5)
    )
    await eventually(lambda: bool(harness.sent))
    waiting = harness.sent[0][2]
    again = waiting.model_copy(
        update={"message_id": "req-other1", "message_type": MessageType.REQUEST}
    )
    with pytest.raises(MessageValidationError) as caught:
        await harness.router.request(CLIENT, SERVER, again, timeout=1)
    assert str(caught.value) == (
        f"a request with correlation id {waiting.correlation_id!r} is already waiting"
    )
    assert harness.router.pending == 1
    harness.push(build_reply(waiting, SERVER, {"done": 1}))
    assert (await first).payload == {"done": 1}


async def test_replies_are_matched_to_their_requests_and_strays_are_dropped() -> None:
    harness = Harness()
    tasks = [
        asyncio.create_task(harness.router.request(CLIENT, SERVER, {"n": n}, timeout=5))
        for n in range(3)
    ]
    await eventually(lambda: len(harness.sent) == 3)
    requests = [m for _, _, m in harness.sent]
    stray = build_reply(request_message(message_id="req-stray1"), SERVER, {"n": -1})
    with capture_logs() as logs:
        harness.push("not json")
        harness.push(stray)
        for request in reversed(requests):
            harness.push(build_reply(request, SERVER, {"n": request.payload["n"]}))
        replies = await asyncio.gather(*tasks)
    assert [r.payload["n"] for r in replies] == [0, 1, 2]
    [undecodable] = [e for e in logs if e["event"] == "undecodable_reply"]
    assert "Invalid JSON" in undecodable["error"]
    # Every log line of the router names its inbox.
    assert {e["inbox"] for e in logs} == {harness.router.inbox_id}
    assert undecodable["log_level"] == "error"
    [dropped] = [e for e in logs if e["event"] == "late_reply_dropped"]
    assert dropped["correlation_id"] == "req-stray1"
    # Three replies after the first pop came in one drain of the inbox, while other
    # requests still waited.
    assert harness.redis.lpops[0] == (harness.router_inbox, 256)
    assert len(harness.redis.lpops) <= 2


async def test_a_reply_without_correlation_id_is_dropped() -> None:
    harness = Harness()
    task = asyncio.create_task(harness.router.request(CLIENT, SERVER, {}, timeout=5))
    await eventually(lambda: bool(harness.sent))
    request = harness.sent[0][2]
    uncorrelated = build_reply(request, SERVER).model_copy(update={"correlation_id": None})
    with capture_logs() as logs:
        harness.push(uncorrelated)
        await eventually(lambda: not harness.redis.lists[harness.router_inbox])
        await asyncio.sleep(0.02)
    assert not task.done()
    assert [e["correlation_id"] for e in logs if e["event"] == "late_reply_dropped"] == [None]
    harness.push(build_reply(request, SERVER, {"ok": 1}))
    assert (await task).payload == {"ok": 1}


async def test_a_reader_failure_is_retried_with_growing_pauses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    harness = Harness()
    harness.redis.failures = [CoordinationError("down"), CoordinationError("still down")]
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    harness.answer = lambda request: build_reply(request, SERVER, {"ok": 1})
    with capture_logs() as logs:
        reply = await harness.router.request(CLIENT, SERVER, {}, timeout=5)
    assert reply.payload == {"ok": 1}
    assert pauses[:2] == [0.1, 0.2]
    failures = [e for e in logs if e["event"] == "reply_inbox_read_failed"]
    assert [e["error"] for e in failures] == ["down", "still down"]


async def test_the_reader_pause_resets_after_a_success_and_is_capped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    harness = Harness()
    harness.redis.failures = [CoordinationError("x")] * 6
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    task = asyncio.create_task(harness.router.request(CLIENT, SERVER, {}, timeout=5))
    await eventually(lambda: not harness.redis.failures and len(harness.redis.blpops) >= 8)
    harness.redis.failures = [CoordinationError("again")]
    count = len(harness.redis.blpops)
    await eventually(lambda: len(harness.redis.blpops) >= count + 2)
    harness.push(build_reply(harness.sent[0][2], SERVER))
    await task
    failure_pauses = [p for p in pauses if p >= 0.1]  # not the fake pop's or polls' naps
    assert failure_pauses == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 0.1]


async def test_deliver_pushes_the_reply_to_the_requesters_inbox() -> None:
    harness = Harness(reply_ttl_s=5)
    request = request_message(headers={REPLY_INBOX_HEADER: "abc", REPLY_TTL_HEADER: "1500"})
    reply = build_reply(request, SERVER, {"r": 1})
    await harness.router.deliver(request, reply)
    assert harness.calls == ["reply"]
    [(name, keys, args)] = harness.scripts.runs
    assert name == "reply_push"
    assert keys == ["t:{_reply:abc}:inbox"]
    envelope, ttl, limit = args
    assert (ttl, limit) == ("1500", 10_000)
    stored = AgentMessage.model_validate_json(envelope)
    assert stored.timestamp is not None  # stamped on the way out
    assert stored.model_copy(update={"timestamp": None}) == reply
    assert json.loads(envelope)["payload"] == {"r": 1}


async def test_deliver_without_a_ttl_header_uses_the_routers_ttl() -> None:
    harness = Harness(reply_ttl_s=5)
    request = request_message(headers={REPLY_INBOX_HEADER: "abc"})
    await harness.router.deliver(request, build_reply(request, SERVER))
    assert harness.scripts.runs[0][2][1] == "5000"


async def test_close_fails_waiters_and_stops_the_reader() -> None:
    harness = Harness()
    task = asyncio.create_task(harness.router.request(CLIENT, SERVER, {}, timeout=30))
    await eventually(lambda: bool(harness.redis.blpops))
    correlation_id = harness.sent[0][2].correlation_id
    # The reader task is named after the inbox (task dumps show whose reader it is).
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert f"reply-inbox-{harness.router.inbox_id}" in names
    await harness.router.aclose()
    with pytest.raises(CoordinationError) as caught:
        await task
    assert str(caught.value) == (
        f"the coordinator was closed while request {correlation_id!r} waited"
    )
    reader = harness.router._reader  # pyright: ignore[reportPrivateUsage]
    assert reader is None
    pops = len(harness.redis.blpops)
    await asyncio.sleep(0.05)
    assert len(harness.redis.blpops) == pops  # the reader has stopped
    with pytest.raises(CoordinationError) as refused:
        await harness.router.request(CLIENT, SERVER, {}, timeout=1)
    assert str(refused.value) == "the coordinator is closed; no new requests"
    await harness.router.aclose()  # closing twice is harmless


async def test_close_cancels_a_reader_stuck_in_its_pop() -> None:
    harness = Harness()
    stuck = asyncio.Event()
    cancelled: list[bool] = []

    async def hanging_blpop(keys: list[str], timeout: float) -> Any:  # noqa: ASYNC109
        stuck.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    harness.redis.blpop = hanging_blpop  # type: ignore[method-assign]
    task = asyncio.create_task(harness.router.request(CLIENT, SERVER, {}, timeout=30))
    await stuck.wait()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await harness.router.aclose()
    assert 1.9 <= loop.time() - start < 5  # waited two pop timeouts, then cancelled
    assert cancelled == [True]
    with pytest.raises(CoordinationError):
        await task


# --- through a coordinator and a worker -------------------------------------------


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
        inbox = coord.keys.reply_inbox(coord._replier.router.inbox_id)
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
    assert coordinator._replier.router.pending == 0


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
        assert coord._replier.router.pending == 0
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
    await eventually(lambda: coord._replier.router.pending == 1)
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


# --- the deprecated runtime.rpc module ---------------------------------------------


def test_the_old_rpc_module_still_works_and_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "tta_agent_coordination.runtime.rpc", raising=False)
    with pytest.warns(DeprecationWarning, match="runtime.rpc is deprecated") as caught:
        old = importlib.import_module("tta_agent_coordination.runtime.rpc")
    assert str(caught[0].message) == (
        "tta_agent_coordination.runtime.rpc is deprecated; import from "
        "tta_agent_coordination.replies (ReplyRouter: "
        "tta_agent_coordination.redis.reply_router) (the alias is removed in 0.3.0)"
    )
    assert old.ReplyRouter is ReplyRouter
    for name in (
        "REPLY_INBOX_HEADER",
        "REPLY_STATUS_HEADER",
        "REPLY_TTL_HEADER",
        "build_message",
        "build_reply",
        "expects_reply",
        "raise_for_reply",
        "reply_payload",
    ):
        assert getattr(old, name) is getattr(sys.modules["tta_agent_coordination.replies"], name)
