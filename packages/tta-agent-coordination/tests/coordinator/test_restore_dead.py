"""``restore_messages`` of dead messages: back into the dead-letter queue, never delivered."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tta_agent_coordination.models import FailureType, MessagePriority
from tta_agent_coordination.redis.codec import envelope_json
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.store import PendingMessage

from .conftest import RECIPIENT, make_message


def _pending(n: int, **fields) -> PendingMessage:
    message = make_message(n)
    return PendingMessage(
        message_id=message.message_id,
        recipient=RECIPIENT,
        envelope=envelope_json(message),
        priority=MessagePriority.HIGH,
        attempts=4,
        last_error="the world builder gave up",
        incarnation=1_700_000_000_000,
        **fields,
    )


async def test_a_dead_message_is_restored_as_a_dead_letter(
    coordinator: RedisMessageCoordinator,
):
    dead = _pending(1, failure=FailureType.PERMANENT)
    alive = _pending(2)
    assert await coordinator.restore_messages([dead, alive]) == [True, True]
    [letter] = await coordinator.dead_letters(RECIPIENT)
    assert letter.message_id == dead.message_id
    assert letter.failure_type is FailureType.PERMANENT  # pyright: ignore[reportAttributeAccessIssue]
    assert letter.last_error == "the world builder gave up"
    assert letter.attempts == 4  # pyright: ignore[reportAttributeAccessIssue]
    assert letter.priority is MessagePriority.HIGH  # pyright: ignore[reportAttributeAccessIssue]
    got = await coordinator.receive(RECIPIENT)
    assert got is not None
    assert got.message.message_id == alive.message_id
    assert await coordinator.receive(RECIPIENT) is None  # the dead one is never delivered
    stats = await coordinator.queue_stats(RECIPIENT)
    assert stats.dead == 1


async def test_restoring_a_dead_message_twice_keeps_one_dead_letter(
    coordinator: RedisMessageCoordinator,
):
    dead = _pending(1, failure=FailureType.TIMEOUT)
    assert await coordinator.restore_messages([dead]) == [True]
    assert await coordinator.restore_messages([dead]) == [False]  # settled in the window
    assert len(await coordinator.dead_letters(RECIPIENT)) == 1


async def test_a_restored_dead_letter_can_be_replayed(coordinator: RedisMessageCoordinator):
    dead = _pending(1, failure=FailureType.PERMANENT)
    await coordinator.restore_messages([dead])
    assert await coordinator.replay_dead_letters(RECIPIENT) == 1
    got = await coordinator.receive(RECIPIENT)
    assert got is not None
    assert got.message.message_id == dead.message_id


async def test_without_a_dedupe_window_a_dead_restore_leaves_no_dedupe_entry(
    coordination_redis, key_prefix
):
    coordinator = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, dedupe_window_s=0
    )
    dead = _pending(1, failure=FailureType.PERMANENT)
    assert await coordinator.restore_messages([dead]) == [True]
    dedupe = coordinator.keys.queue(RECIPIENT).dedupe
    assert await coordination_redis.zscore(dedupe, dead.message_id) is None
    assert len(await coordinator.dead_letters(RECIPIENT)) == 1


async def test_the_dedupe_set_of_restored_dead_letters_expires_by_itself(
    coordinator: RedisMessageCoordinator, coordination_redis
):
    await coordinator.restore_messages([_pending(1, failure=FailureType.PERMANENT)])
    dedupe = coordinator.keys.queue(RECIPIENT).dedupe
    assert 0 < await coordination_redis.pttl(dedupe) <= 60_000


def test_a_malformed_message_cannot_be_restored():
    with pytest.raises(ValidationError, match="malformed"):
        _pending(1, failure=FailureType.MALFORMED)
