"""``MessageResult.status``: not sent, refused, and outcome unknown are told apart.

Issue 23 item 7: a send that timed out after Redis applied it, was retried and then hit
the open breaker, reported ``delivered=False`` like a send that never left; callers who
retried with a new id created duplicate work. Now such a send is ``UNKNOWN`` and says to
send again with the same ``message_id`` (the dedupe makes that safe).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tta_agent_coordination import RedisMessageCoordinator
from tta_agent_coordination.errors import RequestNotDeliveredError
from tta_agent_coordination.models import AgentId, MessageResult, SendStatus
from tta_agent_coordination.redis.lua import script_source
from tta_agent_coordination.redis.scripts import queue_send
from tta_agent_coordination.redis.sending import OUT_OF_MEMORY, outcome_unknown
from tta_agent_coordination.resilience import RedisGuard, RetryPolicy, redis_breaker
from tta_agent_coordination.testing.server import free_port

from .conftest import RECIPIENT, SENDER, make_message

Eval = Callable[..., Awaitable[Any]]


def guard(*, attempts: int = 3, failure_threshold: int = 1) -> RedisGuard:
    """Retries quickly; the breaker opens after ``failure_threshold`` failures."""
    breaker = redis_breaker(failure_threshold=failure_threshold, timeout_seconds=60)
    retry = RetryPolicy(attempts=attempts, initial_s=0.001, max_s=0.001, name="redis")
    return RedisGuard(breaker=breaker, retry=retry)


async def warm_up(coord: RedisMessageCoordinator) -> None:
    """One send, so that the next sends to RECIPIENT are single EVALSHAs.

    (The first send of a process to a queue goes in a pipeline with the queue index
    update; the faults below are injected into the client's plain EVALSHA.)
    """
    assert (await coord.send_message(SENDER, RECIPIENT, make_message(0))).delivered


def patch_evalsha(
    monkeypatch: pytest.MonkeyPatch,
    client: aioredis.Redis,
    fault: Callable[[Eval, tuple[Any, ...]], Awaitable[Any]],
) -> list[int]:
    """Route the client's single EVALSHAs of the send script through ``fault``.

    Returns a list that grows by one per such call.
    """
    real: Eval = client.evalsha  # pyright: ignore[reportUnknownMemberType]
    send_sha = hashlib.sha1(script_source(queue_send.NAME).encode()).hexdigest()
    calls: list[int] = []

    async def evalsha(*args: Any) -> Any:
        if args[0] != send_sha:
            return await real(*args)
        calls.append(1)
        return await fault(real, args)

    monkeypatch.setattr(client, "evalsha", evalsha)
    return calls


async def applied_then_timed_out(real: Eval, args: tuple[Any, ...]) -> Any:
    await real(*args)
    raise RedisTimeoutError("Timeout reading from socket")


async def test_applied_timed_out_then_breaker_open_is_unknown_and_resend_is_safe(
    coordination_redis, key_prefix, monkeypatch
):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, guard=guard())
    await warm_up(coord)
    calls = patch_evalsha(monkeypatch, coordination_redis, applied_then_timed_out)
    message = make_message(1)
    result = await coord.send_message(SENDER, RECIPIENT, message)
    assert len(calls) == 1  # the retry met the open breaker
    assert not result.delivered
    assert result.status is SendStatus.UNKNOWN
    assert result.error is not None
    assert "same message_id" in result.error
    monkeypatch.undo()
    # The first attempt was applied: the message is in the queue (with the warm-up's).
    # The caller sends it again with the same id (here through a closed breaker): safe.
    other = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    assert (await other.queue_stats(RECIPIENT)).unsettled == 2
    again = await other.send_message(SENDER, RECIPIENT, message)
    assert (again.delivered, again.status) == (True, SendStatus.DUPLICATE)
    assert (await other.queue_stats(RECIPIENT)).unsettled == 2


async def test_a_retry_that_gets_through_reports_the_applied_first_attempt_as_duplicate(
    coordination_redis, key_prefix, monkeypatch
):
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, guard=guard(failure_threshold=5)
    )
    state = {"faulty": True}

    async def first_times_out(real: Eval, args: tuple[Any, ...]) -> Any:
        result = await real(*args)
        if state.pop("faulty", False):
            raise RedisTimeoutError("Timeout reading from socket")
        return result

    await warm_up(coord)
    calls = patch_evalsha(monkeypatch, coordination_redis, first_times_out)
    result = await coord.send_message(SENDER, RECIPIENT, make_message(1))
    assert len(calls) == 2
    assert (result.delivered, result.status) == (True, SendStatus.DUPLICATE)
    assert (await coord.queue_stats(RECIPIENT)).unsettled == 2


async def test_timed_out_then_out_of_memory_is_unknown(coordination_redis, key_prefix, monkeypatch):
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, guard=guard(failure_threshold=5)
    )
    state = {"faulty": True}

    async def applied_then_full(real: Eval, args: tuple[Any, ...]) -> Any:
        if state.pop("faulty", False):
            await real(*args)
            raise RedisTimeoutError("Timeout reading from socket")
        raise OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")

    await warm_up(coord)
    patch_evalsha(monkeypatch, coordination_redis, applied_then_full)
    result = await coord.send_message(SENDER, RECIPIENT, make_message(1))
    assert (result.delivered, result.status) == (False, SendStatus.UNKNOWN)
    assert "same message_id" in (result.error or "")


async def test_out_of_memory_is_refused_not_unavailable(
    coordination_redis, key_prefix, monkeypatch, metrics
):
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, guard=guard(), metrics=metrics
    )

    async def full(_real: Eval, _args: tuple[Any, ...]) -> Any:
        raise OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")

    await warm_up(coord)
    calls = patch_evalsha(monkeypatch, coordination_redis, full)
    results = await coord.send_many([make_message(1), make_message(2)])
    assert len(calls) == 1  # a refusal, not a failure: no retry
    assert [(r.delivered, r.status, r.error) for r in results] == [
        (False, SendStatus.REFUSED, OUT_OF_MEMORY)
    ] * 2
    assert metrics.total("delivered_error") == 2
    monkeypatch.undo()
    assert (await coord.queue_stats(RECIPIENT)).unsettled == 1
    # Not a Redis failure: the breaker stays closed, the next send goes through.
    assert (await coord.send_message(SENDER, RECIPIENT, make_message(3))).delivered


async def test_open_breaker_before_any_attempt_is_unavailable(coordination_redis, key_prefix):
    g = guard()
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, guard=g)

    async def redis_down() -> None:
        raise RedisTimeoutError("Timeout connecting to server")

    with pytest.raises(RedisTimeoutError):
        await g.breaker.call(redis_down)  # one failure opens it
    result = await coord.send_message(SENDER, RECIPIENT, make_message(1))
    assert (result.delivered, result.status) == (False, SendStatus.UNAVAILABLE)
    assert (
        await RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix).queue_stats(
            RECIPIENT
        )
    ).unsettled == 0


async def test_a_refused_connection_is_unavailable_not_unknown():
    client = aioredis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    try:
        coord = RedisMessageCoordinator(client, key_prefix="p4", guard=guard(attempts=1))
        result = await coord.send_message(SENDER, RECIPIENT, make_message(1))
    finally:
        await client.aclose()
    assert (result.delivered, result.status) == (False, SendStatus.UNAVAILABLE)
    assert result.error is not None
    assert result.error.startswith("redis unavailable")


def test_what_may_have_reached_redis():
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import MaxConnectionsError, ResponseError

    from tta_agent_coordination.errors import CircuitBreakerOpenError

    assert outcome_unknown(RedisTimeoutError("Timeout reading from socket"))
    assert outcome_unknown(TimeoutError())
    assert outcome_unknown(RedisConnectionError("Connection closed by server."))
    assert outcome_unknown(ConnectionResetError())
    assert not outcome_unknown(RedisConnectionError("Error 111 connecting to 127.0.0.1:1."))
    assert not outcome_unknown(MaxConnectionsError("Too many connections"))
    assert not outcome_unknown(CircuitBreakerOpenError("redis", 1.0))
    assert not outcome_unknown(ResponseError("WRONGTYPE"))
    assert not outcome_unknown(ConnectionRefusedError())


def test_results_built_without_status_get_one_from_delivered_and_duplicate():
    assert MessageResult(message_id="m", delivered=True).status is SendStatus.ENQUEUED
    dup = MessageResult(message_id="m", delivered=True, duplicate=True)
    assert dup.status is SendStatus.DUPLICATE
    assert MessageResult(message_id="m", delivered=False).status is SendStatus.REFUSED
    with pytest.raises(ValueError, match="contradicts"):
        MessageResult(message_id="m", delivered=True, status=SendStatus.UNKNOWN)
    with pytest.raises(ValueError, match="contradicts"):
        MessageResult(message_id="m", delivered=False, status=SendStatus.ENQUEUED)


async def test_a_request_whose_send_outcome_is_unknown_waits_for_its_reply(
    coordination_redis, key_prefix, monkeypatch
):
    requester = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, guard=guard(attempts=2, failure_threshold=5)
    )
    responder = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    await warm_up(requester)
    applied: list[int] = []

    async def first_applied_then_all_time_out(real: Eval, args: tuple[Any, ...]) -> Any:
        if not applied:
            applied.append(await real(*args))
        raise RedisTimeoutError("Timeout reading from socket")

    calls = patch_evalsha(monkeypatch, coordination_redis, first_applied_then_all_time_out)
    pending = asyncio.create_task(
        requester.request(SENDER, RECIPIENT, {"q": 1}, timeout=5, expire=False)
    )
    answered = False
    for _ in range(300):
        received = await responder.receive(RECIPIENT)
        if received is None:
            await asyncio.sleep(0.01)
            continue
        await responder.ack(RECIPIENT, received.token)
        if received.message.payload == {"q": 1}:  # not the warm-up message
            assert await responder.reply(RECIPIENT, received.message, {"ok": True})
            answered = True
            break
    assert answered
    reply = await pending
    assert reply.payload == {"ok": True}
    assert len(calls) == 2  # both attempts of the request's send timed out


async def test_a_request_refused_is_not_delivered(coordination_redis, key_prefix):
    requester = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, queue_size=1)
    await warm_up(requester)
    with pytest.raises(RequestNotDeliveredError, match="queue full"):
        await requester.request(SENDER, RECIPIENT, {"q": 1}, timeout=5)


async def test_an_error_reply_is_refused_for_one_queue_and_unknown_across_queues(
    coordination_redis, key_prefix
):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, guard=guard())
    other = AgentId("narrator", "n9")
    # A wrong type under the queue's dedupe key makes its script fail with WRONGTYPE.
    await coordination_redis.set(coord.keys.queue(RECIPIENT).dedupe, "not a zset")
    alone = await coord.send_message(SENDER, RECIPIENT, make_message(1))
    assert (alone.delivered, alone.status) == (False, SendStatus.REFUSED)
    both = await coord.send_many([make_message(2), make_message(3, recipient=other)])
    assert [r.status for r in both] == [SendStatus.UNKNOWN] * 2
    assert (await coord.queue_stats(other)).unsettled == 1  # it was applied
