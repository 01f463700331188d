import asyncio
import time

import pytest

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.models import (
    DeadLetter,
    FailureType,
    MessagePriority,
    UndecodableDeadLetter,
)
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import fake_redis

from .conftest import RECIPIENT, SENDER, make_message


def decoded(letters: list[DeadLetter | UndecodableDeadLetter]) -> list[DeadLetter]:
    """The dead letters, each asserted to be a decoded message."""
    assert all(isinstance(d, DeadLetter) for d in letters), letters
    return [d for d in letters if isinstance(d, DeadLetter)]


async def test_ack_is_idempotent_and_unknown_tokens_change_nothing(coordinator, metrics):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    await coordinator.send_message(SENDER, RECIPIENT, make_message(2))
    got = await coordinator.receive(RECIPIENT)
    before = await coordinator.queue_stats(RECIPIENT)
    for token in ["", "nope", "1-0-0", "2-1-1", "9-1-0", got.token + "0"]:
        assert not await coordinator.ack(RECIPIENT, token)
        assert not await coordinator.nack(RECIPIENT, token)
    assert await coordinator.queue_stats(RECIPIENT) == before
    assert await coordinator.ack(RECIPIENT, got.token)
    assert not await coordinator.ack(RECIPIENT, got.token)
    assert not await coordinator.nack(RECIPIENT, got.token)
    after = await coordinator.queue_stats(RECIPIENT)
    assert after.unsettled == 1
    assert metrics.total("acked") == 1


async def test_ack_many(coordinator):
    for n in range(5):
        await coordinator.send_message(SENDER, RECIPIENT, make_message(n))
    batch = await coordinator.receive_batch(RECIPIENT, 5)
    tokens = [b.token for b in batch]
    assert await coordinator.ack_many(RECIPIENT, [*tokens[:3], "bogus", tokens[0]]) == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert await coordinator.ack_many(RECIPIENT, []) == []
    assert (await coordinator.queue_stats(RECIPIENT)).leased == 2


async def test_transient_nack_retries_with_backoff_never_sooner(coordinator, metrics):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    first = await coordinator.receive(RECIPIENT)
    nacked_at = time.monotonic()
    assert await coordinator.nack(RECIPIENT, first.token, FailureType.TRANSIENT, "flaky")
    assert await coordinator.receive(RECIPIENT) is None  # base delay is 0.2 s
    stats = await coordinator.queue_stats(RECIPIENT)
    assert stats.delayed == 1
    second = await coordinator.receive(RECIPIENT, block=5)
    assert time.monotonic() - nacked_at >= 0.19
    assert second.attempts == 2
    assert second.queue_message.last_error == "flaky"
    nacked_at = time.monotonic()
    await coordinator.nack(RECIPIENT, second.token, error="flaky again")  # 0.4 s
    await asyncio.sleep(0.25)
    assert await coordinator.receive(RECIPIENT) is None
    third = await coordinator.receive(RECIPIENT, block=5)
    assert time.monotonic() - nacked_at >= 0.39
    assert third.attempts == 3
    assert metrics.total("retries_scheduled") == 2
    assert metrics.total("nacks") == 2


async def test_retries_exhausted_goes_to_dlq_with_last_error(
    coordination_redis, key_prefix, metrics
):
    coord = RedisMessageCoordinator(
        coordination_redis,
        key_prefix=key_prefix,
        retry_attempts=2,
        backoff_base=0,
        backoff_max=0,
        metrics=metrics,
    )
    await coord.send_message(SENDER, RECIPIENT, make_message(1, priority=MessagePriority.HIGH))
    for attempt in range(1, 4):
        got = await coord.receive(RECIPIENT)
        assert got.attempts == attempt
        assert await coord.nack(RECIPIENT, got.token, error=f"fail {attempt}")
    assert await coord.receive(RECIPIENT) is None
    dead = decoded(await coord.dead_letters(RECIPIENT))
    assert len(dead) == 1
    assert dead[0].attempts == 3
    assert dead[0].last_error == "fail 3"
    assert dead[0].failure_type is FailureType.TRANSIENT
    assert dead[0].priority is MessagePriority.HIGH
    assert metrics.total("permanent") == 1
    assert (await coord.queue_stats(RECIPIENT)).unsettled == 0


async def test_permanent_failure_goes_straight_to_dlq(coordinator):
    await coordinator.send_message(SENDER, RECIPIENT, make_message(1))
    got = await coordinator.receive(RECIPIENT)
    assert await coordinator.nack(RECIPIENT, got.token, FailureType.PERMANENT, "bad input")
    dead = await coordinator.dead_letters(RECIPIENT)
    assert dead[0].failure_type is FailureType.PERMANENT
    assert dead[0].attempts == 1
    assert dead[0].last_error == "bad input"


async def test_retry_attempts_zero_means_one_delivery(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, retry_attempts=0)
    await coord.send_message(SENDER, RECIPIENT, make_message(1))
    got = await coord.receive(RECIPIENT)
    await coord.nack(RECIPIENT, got.token, error="x")
    assert len(await coord.dead_letters(RECIPIENT)) == 1


async def test_backoff_is_capped_and_jitter_only_adds(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(
        coordination_redis,
        key_prefix=key_prefix,
        retry_attempts=10,
        backoff_base=0.1,
        backoff_factor=10,
        backoff_max=0.3,
        backoff_jitter=0.5,
    )
    keys = coord.keys.queue(RECIPIENT)
    await coord.send_message(SENDER, RECIPIENT, make_message(1))
    for _ in range(3):
        got = await coord.receive(RECIPIENT, block=5)
        server_now = await coordination_redis.time()
        now_ms = server_now[0] * 1000 + server_now[1] // 1000
        await coord.nack(RECIPIENT, got.token)
        [(_, due)] = await coordination_redis.zrange(keys.delayed, 0, 0, withscores=True)
        delay_ms = due - now_ms
        expected = min(100 * 10 ** (got.attempts - 1), 300)
        assert expected - 5 <= delay_ms <= expected * 1.5 + 20


async def test_a_lease_that_expires_counts_as_a_delivery_so_poison_reaches_the_dlq(
    coordination_redis, key_prefix
):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, retry_attempts=1)
    await coord.send_message(SENDER, RECIPIENT, make_message(1))
    for _ in range(2):  # a consumer that crashes on this message, twice
        assert await coord.receive(RECIPIENT, visibility_timeout=0.1) is not None
        await asyncio.sleep(0.15)
    assert await coord.receive(RECIPIENT) is None
    dead = decoded(await coord.dead_letters(RECIPIENT))
    assert len(dead) == 1
    assert dead[0].failure_type is FailureType.TIMEOUT
    assert dead[0].last_error == "lease expired"
    assert dead[0].attempts == 2


async def test_dead_letter_replay_and_purge(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    for n in range(4):
        await coord.send_message(SENDER, RECIPIENT, make_message(n))
        got = await coord.receive(RECIPIENT)
        await coord.nack(RECIPIENT, got.token, FailureType.PERMANENT, f"e{n}")
    dead = decoded(await coord.dead_letters(RECIPIENT))
    assert [d.message.payload["n"] for d in dead] == [0, 1, 2, 3]
    two = decoded(await coord.dead_letters(RECIPIENT, limit=2))
    assert [d.message.payload["n"] for d in two] == [0, 1]
    with pytest.raises(ConfigurationError):
        await coord.dead_letters(RECIPIENT, limit=0)
    assert await coord.replay_dead_letters(RECIPIENT, [dead[1].message.message_id, "unknown"]) == 1
    assert await coord.replay_dead_letters(RECIPIENT, []) == 0
    replayed = await coord.receive(RECIPIENT)
    assert replayed.message.payload == {"n": 1}
    assert replayed.attempts == 1
    assert replayed.queue_message.last_error == "e1"
    await coord.ack(RECIPIENT, replayed.token)
    assert await coord.replay_dead_letters(RECIPIENT) == 3
    assert (await coord.queue_stats(RECIPIENT)).dead == 0
    for _ in range(3):
        got = await coord.receive(RECIPIENT)
        await coord.nack(RECIPIENT, got.token, FailureType.PERMANENT, "again")
    assert await coord.purge_dead_letters(RECIPIENT) == 3
    assert await coord.purge_dead_letters(RECIPIENT) == 0
    assert await coord.dead_letters(RECIPIENT) == []


async def test_replay_skips_a_message_that_is_live_again(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, dedupe_window_s=0)
    m = make_message(1)
    await coord.send_message(SENDER, RECIPIENT, m)
    got = await coord.receive(RECIPIENT)
    await coord.nack(RECIPIENT, got.token, FailureType.PERMANENT, "x")
    await coord.send_message(SENDER, RECIPIENT, m)  # sent again after it died
    assert await coord.replay_dead_letters(RECIPIENT) == 0
    assert (await coord.queue_stats(RECIPIENT)).dead == 1


async def test_replay_walks_more_than_one_batch(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, retry_attempts=0)
    await coord.send_many([make_message(n) for n in range(1200)])
    while batch := await coord.receive_batch(RECIPIENT, 500):
        for item in batch:
            await coord.nack(RECIPIENT, item.token, error="x")
    assert (await coord.queue_stats(RECIPIENT)).dead == 1200
    assert await coord.replay_dead_letters(RECIPIENT) == 1200
    assert (await coord.queue_stats(RECIPIENT)).ready[MessagePriority.NORMAL] == 1200


async def test_dlq_is_bounded(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix, dlq_max_len=5)
    for n in range(8):
        await coord.send_message(SENDER, RECIPIENT, make_message(n))
        got = await coord.receive(RECIPIENT)
        await coord.nack(RECIPIENT, got.token, FailureType.PERMANENT, "x")
    dead = decoded(await coord.dead_letters(RECIPIENT))
    assert [d.message.payload["n"] for d in dead] == [3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    "bad",
    [
        {"queue_size": 0},
        {"retry_attempts": -1},
        {"backoff_base": -0.1},
        {"backoff_factor": 0.5},
        {"backoff_max": -1},
        {"backoff_base": 10, "backoff_max": 1},
        {"backoff_jitter": 2},
        {"no_such_setting": 1},
    ],
)
async def test_configure_validates_and_keeps_old_values_on_error(coordinator, bad):
    before = coordinator.config
    with pytest.raises(ConfigurationError, match="invalid coordinator configuration"):
        await coordinator.configure(**bad)
    assert coordinator.config == before


async def test_configure_changes_limits(coordinator):
    await coordinator.configure(
        queue_size=7, retry_attempts=5, backoff_base=0.5, backoff_factor=3, backoff_max=9
    )
    cfg = coordinator.config
    assert (
        cfg.queue_size,
        cfg.retry_attempts,
        cfg.backoff_base,
        cfg.backoff_factor,
        cfg.backoff_max,
    ) == (
        7,
        5,
        0.5,
        3,
        9,
    )


def test_constructor_validates():
    client = fake_redis()
    with pytest.raises(ConfigurationError):
        RedisMessageCoordinator(client, queue_size=0)
    with pytest.raises(ConfigurationError, match="invalid key prefix"):
        RedisMessageCoordinator(client, key_prefix="bad{prefix}")
    defaults = RedisMessageCoordinator(client).config
    assert (defaults.queue_size, defaults.retry_attempts) == (10_000, 3)
    assert (defaults.backoff_base, defaults.backoff_factor, defaults.backoff_max) == (
        1.0,
        2.0,
        30.0,
    )
