"""A primary of the Cluster dies mid-run: no send that its replica confirmed is lost.

A private Cluster (ports 7300-7305, ``scripts/redis-cluster`` with another base port)
so that killing a primary never disturbs the shared one. Producers send with
``wait_replicas=1`` and send again, with the same id, whatever was not confirmed;
a primary is SIGKILLed; its replica takes over; every confirmed message is then received.
The longest time without a confirmed send is the unavailability the failover cost
(reported in ``docs/scaling.md``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tta_agent_coordination import AgentId, AgentMessage, MessageType, SendStatus
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.settings import CoordinationSettings

from .conftest import PRIVATE_DIR, private_cluster_script

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]

SENDER = AgentId("producer", "p1")
CONFIRMED = (SendStatus.ENQUEUED, SendStatus.DUPLICATE)


def _message(n: int, recipient: AgentId) -> AgentMessage:
    return AgentMessage(
        sender=SENDER,
        recipient=recipient,
        message_type=MessageType.EVENT,
        payload={"n": n},
        message_id=f"failover-{n:06d}",
    )


async def test_a_primary_failover_loses_no_confirmed_send(private_cluster: str) -> None:
    client = CoordinationSettings(redis_url=private_cluster).redis_client()
    coord = RedisMessageCoordinator(
        client, key_prefix="failover", wait_replicas=1, wait_timeout_s=1.0, retry_attempts=0
    )
    agents = [AgentId("fo", f"a{i}") for i in range(12)]  # spread over the three primaries
    confirmed: dict[str, AgentId] = {}
    confirmed_at: list[float] = []
    keys = coord._core.keys  # pyright: ignore[reportPrivateUsage]
    victim = await _primary_port(client, keys.queue(agents[0]).ready[0])
    on_victim = {a for a in agents if await _primary_port(client, keys.queue(a).ready[0]) == victim}
    killed_at: float | None = None
    written_at: float | None = None  # the first write to the victim's slot after the kill
    restart: asyncio.Task[None] | None = None
    try:
        n = 0
        deadline = time.monotonic() + 200
        while len(confirmed) < 400 and time.monotonic() < deadline:
            agent = agents[n % len(agents)]
            message = _message(n, agent)
            while time.monotonic() < deadline:  # again, same id, until confirmed
                result = await coord.send_message(SENDER, agent, message)
                if (
                    killed_at is not None
                    and written_at is None
                    and agent in on_victim
                    and "not confirmed by" in (result.error or "")
                ):
                    # Written to the promoted replica, which has no replica of its own
                    # yet. Only now is the killed node started again: a primary without
                    # persistence that restarts before its replica took over comes back
                    # empty, and its replica copies the empty data set (Redis' own
                    # warning against restarting such a primary automatically).
                    written_at = time.monotonic()
                    restart = asyncio.create_task(_restart_killed_node())
                if result.status in CONFIRMED:
                    confirmed[message.message_id] = agent
                    confirmed_at.append(time.monotonic())
                    break
                await asyncio.sleep(0.05)
            n += 1
            if len(confirmed) >= 100 and killed_at is None and agent == agents[0]:
                # Just confirmed by the victim's replica: it is in sync, so it can take over.
                _kill(victim)
                killed_at = time.monotonic()
        assert killed_at is not None
        assert written_at is not None, "the killed primary's slots never took a write again"
        assert restart is not None
        await restart
        assert len(confirmed) == 400, f"only {len(confirmed)} confirmed before the deadline"
        received: set[str] = set()
        for agent in agents:
            while batch := await coord.receive_batch(agent, 100):
                for got in batch:
                    received.add(got.message.message_id)
                    await coord.ack(agent, got.token)
        lost = set(confirmed) - received
        by_agent = sorted({str(confirmed[m]) for m in lost})
        assert lost == set(), (
            f"{len(lost)} of {len(confirmed)} confirmed sends lost (of {by_agent}; "
            f"the victim's: {sorted(map(str, on_victim))}; received {len(received)})"
        )
        failover_s = written_at - killed_at
        assert failover_s < 60, f"the killed primary's slots took no write for {failover_s:.1f} s"
        report = Path(os.environ.get("TTA_COORD_FAILOVER_REPORT", os.devnull))
        await asyncio.to_thread(
            report.write_text,
            f"slots of the killed primary writable again after {failover_s:.2f} s; "
            f"{len(confirmed)} confirmed sends, 0 lost\n",
        )
    finally:
        await coord.aclose()
        await client.aclose()


async def _primary_port(client, key: str) -> int:
    await client.initialize()
    node = client.get_node_from_key(key)
    return int(node.port)


async def _restart_killed_node() -> None:
    """Start the killed node again (as an operator would): it rejoins as the replica of
    the promoted one, and its slots can confirm sends with ``WAIT 1`` again."""
    await asyncio.to_thread(private_cluster_script, "up", "cluster")


def _kill(port: int) -> None:
    pid = int((PRIVATE_DIR / f"{port}.pid").read_text().strip())
    os.kill(pid, signal.SIGKILL)
