"""Dedupe sets expire by themselves after their last window; old ones are swept.

Issue 23 item 9: recovery deleted an emptied queue and dropped it from the index but
kept its dedupe set (ids inside their window), and nothing ever pruned it again: 50
short-lived agents left 1,000 entries for good. Every script that settles an id now sets
the set's expiry to the end of its latest window while no id in it is unsettled, so an
abandoned queue's set goes by itself; ``recover_pending()`` still sweeps sets written
before that (they have no expiry).
"""

from __future__ import annotations

import asyncio

from tta_agent_coordination.models import AgentId, FailureType
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.redis.dedupe_sweeper import sweep_orphan_dedupe_sets
from tta_agent_coordination.redis.keys import KeySpace
from tta_agent_coordination.redis.queue_index import QueueIndex

from .conftest import SENDER, make_message

WINDOW_S = 0.3
AGENTS = [AgentId("shortlived", f"s{i}") for i in range(5)]
KEEP = AgentId("longlived", "l1")


async def handle_all(coord: RedisMessageCoordinator, agent: AgentId, n: int) -> None:
    for i in range(n):
        assert (await coord.send_message(SENDER, agent, make_message(i, recipient=agent))).delivered
    batch = await coord.receive_batch(agent, n)
    assert await coord.ack_many(agent, [r.token for r in batch]) == [True] * n


async def test_recovery_sweeps_dedupe_sets_of_queues_gone_from_the_index(
    coordination_redis, key_prefix
):
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, dedupe_window_s=WINDOW_S
    )
    keys = KeySpace(key_prefix)
    for agent in AGENTS:
        await handle_all(coord, agent, 4)
    # A queue still in the index, with an unsettled message: not swept.
    assert (await coord.send_message(SENDER, KEEP, make_message(9, recipient=KEEP))).delivered

    await coord.recover_pending()  # the emptied queues leave the index
    assert await coord.known_queues() == [KEEP]
    for agent in AGENTS:  # ... inside the window their ids are still duplicates
        assert await coordination_redis.zcard(keys.queue(agent).dedupe) == 4
        again = await coord.send_message(SENDER, agent, make_message(0, recipient=agent))
        assert again.duplicate
    await coord.recover_pending()
    assert await coord.known_queues() == [KEEP]  # the resends were duplicates

    await asyncio.sleep(WINDOW_S + 0.1)
    await coord.recover_pending()
    for agent in AGENTS:
        assert not await coordination_redis.exists(keys.queue(agent).dedupe)
    assert await coordination_redis.zcard(keys.queue(KEEP).dedupe) == 1
    assert (await coord.queue_stats(KEEP)).unsettled == 1
    # Past the window, a message id of a swept queue is new again.
    fresh = await coord.send_message(SENDER, AGENTS[0], make_message(0, recipient=AGENTS[0]))
    assert (fresh.delivered, fresh.duplicate) == (True, False)


async def test_a_sweep_keeps_unsettled_ids_and_ids_inside_their_window(
    coordination_redis, key_prefix
):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    keys = KeySpace(key_prefix)
    dedupe = keys.queue(AGENTS[0]).dedupe
    now_ms = int((await coordination_redis.time())[0]) * 1000
    await coordination_redis.zadd(
        dedupe, {"expired": now_ms - 1_000, "inside": now_ms + 60_000, "unsettled": 2**53 - 1}
    )
    other = keys.queue(AGENTS[1]).dedupe
    await coordination_redis.zadd(other, {"expired": now_ms - 1_000})
    core = coord._core
    sweep = await sweep_orphan_dedupe_sets(core, QueueIndex(core))
    assert (sweep.swept, sweep.ids_removed, sweep.sets_deleted) == (2, 2, 1)
    assert sorted(await coordination_redis.zrange(dedupe, 0, -1)) == [b"inside", b"unsettled"]
    assert not await coordination_redis.exists(other)


async def server_ms(redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_a_dedupe_set_expires_by_itself_at_the_end_of_its_last_window(
    coordination_redis, key_prefix
):
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, dedupe_window_s=WINDOW_S
    )
    dedupe = KeySpace(key_prefix).queue(AGENTS[0]).dedupe
    await handle_all(coord, AGENTS[0], 3)
    ttl = await coordination_redis.pttl(dedupe)
    assert 0 < ttl <= WINDOW_S * 1000
    deadline = await server_ms(coordination_redis) + ttl
    # inside the window its ids are still duplicates
    again = await coord.send_message(SENDER, AGENTS[0], make_message(0, recipient=AGENTS[0]))
    assert again.duplicate
    while (now := await server_ms(coordination_redis)) <= deadline:  # noqa: ASYNC110 - the server clock, not an event
        await asyncio.sleep((deadline + 1 - now) / 1000)
    # no recovery, no sweep, no further send: the set is gone
    assert not await coordination_redis.exists(dedupe)


async def test_a_dedupe_set_with_an_unsettled_id_never_expires(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(
        coordination_redis, key_prefix=key_prefix, dedupe_window_s=30, retry_attempts=0
    )
    agent = AGENTS[1]
    dedupe = KeySpace(key_prefix).queue(agent).dedupe
    await handle_all(coord, agent, 1)
    assert await coordination_redis.pttl(dedupe) > 0
    # a send, a scheduled send, a replay each mark an id unsettled: no expiry then
    await coord.send_message(SENDER, agent, make_message(1, recipient=agent))
    assert await coordination_redis.pttl(dedupe) == -1
    [got] = await coord.receive_batch(agent, 1)
    assert await coord.nack(agent, got.token, FailureType.PERMANENT, "no")
    assert await coordination_redis.pttl(dedupe) > 0  # dead-lettered: settled
    await coord.send_message(SENDER, agent, make_message(2, recipient=agent), delay_s=60)
    assert await coordination_redis.pttl(dedupe) == -1
    assert await coord.cancel_scheduled(agent, "msg-000002")
    assert await coordination_redis.pttl(dedupe) > 0
    assert await coord.replay_dead_letters(agent) == 1
    assert await coordination_redis.pttl(dedupe) == -1
    [got] = await coord.receive_batch(agent, 1)
    assert await coord.ack(agent, got.token)
    assert await coordination_redis.pttl(dedupe) > 0
