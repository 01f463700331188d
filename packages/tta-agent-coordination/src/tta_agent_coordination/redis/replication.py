"""Sends confirmed by replicas: the send script and ``WAIT`` on one connection.

Redis replicates asynchronously. A primary that fails right after it answered a send may
take the message with it: its replica, promoted by Sentinel or the Cluster, never saw
it. With ``wait_replicas=N`` (a coordinator option, off by default) every queue's send
script is followed by ``WAIT N timeout`` **on the same connection** — ``WAIT`` covers the
writes of its own connection only, so neither a pooled client (any connection) nor a
Cluster client (a keyless command goes to any node) can be trusted to send it — and the
send reports how many replicas confirmed. A message that fewer than N replicas confirmed
within the timeout is reported ``SendStatus.UNKNOWN``: it is in the primary, and a
failover before it replicates would lose it, so the caller sends it again with the same
``message_id`` (dedupe makes that safe). See ``docs/scaling.md`` ("Durability across a
failover").

A duplicate (the message was already there) writes nothing, and ``WAIT`` after no write
returns at once whatever the replicas hold. So a duplicate is confirmed by a write of its
own: a short-lived mark key of the queue, then ``WAIT`` (replication is one ordered
stream: once a replica has the mark, it has every earlier write, the message's included).

redis-py has no way to pin two commands to one connection of a Cluster node, hence the
raw connection here (the same kind ``StreamWaiter`` uses for its blocked reads).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from tta_agent_coordination.clients import RedisClient, is_cluster
from tta_agent_coordination.errors import CoordinatorUnavailableError
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.redis.lua import ScriptCall, ScriptSet, script_source
from tta_agent_coordination.redis.stream_reads import slot_group
from tta_agent_coordination.redis.topology import node_connections

__all__ = ["Confirmed", "confirm_writes", "run_confirmed"]

R = TypeVar("R")

Confirmed = tuple[R | BaseException, int]
"""One call's outcome (or the error Redis answered it with) and the replicas that confirmed."""

_log = get_logger(__name__)
_REDIRECTS = ("MOVED ", "ASK ")
_ATTEMPTS = 3
"""A call is sent again after NOSCRIPT, or after MOVED/ASK (a resharding) with a fresh
slot map; more than that is an error for the caller's guard."""
_MARK_TTL_MS = 10_000


async def run_confirmed(
    client: RedisClient,
    scripts: ScriptSet,
    calls: Sequence[ScriptCall[R]],
    *,
    replicas: int,
    timeout_ms: int,
    keep: tuple[type[BaseException], ...] = (),
) -> list[Confirmed[R]]:
    """Run each call, then ``WAIT replicas timeout_ms`` on its connection; all at once.

    Returns, per call in order, its parsed outcome (or the error, when it is one of
    ``keep``) and how many replicas confirmed its writes.

    Raises:
        redis.exceptions.RedisError: a call failed otherwise (the guard retries it).
        CoordinatorUnavailableError: the call was redirected or refused too many times.
    """
    return list(
        await asyncio.gather(
            *(_one(client, scripts, call, replicas, timeout_ms, keep) for call in calls)
        )
    )


async def confirm_writes(client: RedisClient, mark: str, *, replicas: int, timeout_ms: int) -> int:
    """Write ``mark`` (expiring), then ``WAIT``: the replicas that have everything before it.

    Raises:
        redis.exceptions.RedisError: the write failed.
        CoordinatorUnavailableError: redirected too many times.
    """
    for _ in range(_ATTEMPTS):
        written, acked = await _on_node(
            client,
            mark,
            [("SET", mark, "1", "PX", _MARK_TTL_MS), ("WAIT", replicas, timeout_ms)],
        )
        if isinstance(written, ResponseError) and str(written).startswith(_REDIRECTS):
            await _refresh(client)
            continue
        if isinstance(written, BaseException):
            raise written
        return _acked(acked)
    raise CoordinatorUnavailableError(f"{mark} was redirected {_ATTEMPTS} times in a row")


async def _one(
    client: RedisClient,
    scripts: ScriptSet,
    call: ScriptCall[R],
    replicas: int,
    timeout_ms: int,
    keep: tuple[type[BaseException], ...],
) -> Confirmed[R]:
    sha = scripts[call.name].sha
    # A call's KEYS may come pre-encoded (queue_send sends bytes): the slot is the text's.
    first = call.keys[0]
    first_key = first.decode() if isinstance(first, bytes) else first
    for _ in range(_ATTEMPTS):
        outcome, acked = await _on_node(
            client,
            first_key,
            [
                ("EVALSHA", sha, len(call.keys), *call.keys, *call.argv),
                ("WAIT", replicas, timeout_ms),
            ],
        )
        if isinstance(outcome, NoScriptError):
            node = await node_connections(client, slot_group(client, first_key))
            await node.execute_command("SCRIPT", "LOAD", script_source(call.name))
            continue
        if isinstance(outcome, ResponseError) and str(outcome).startswith(_REDIRECTS):
            await _refresh(client)
            continue
        if isinstance(outcome, keep):
            return outcome, _acked(acked)
        if isinstance(outcome, BaseException):
            raise outcome
        return call.parse(outcome), _acked(acked)
    raise CoordinatorUnavailableError(
        f"the {call.name} script was redirected or not loaded {_ATTEMPTS} times in a row"
    )


async def _on_node(client: RedisClient, key: str, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Send ``commands`` back to back on one connection of ``key``'s node; their replies.

    An error reply stands in the list as its exception, so every reply is read and the
    connection stays in step.
    """
    node = await node_connections(client, slot_group(client, key))
    conn: Any = await node.get_connection()
    try:
        await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        return [await _reply(conn) for _ in commands]
    except BaseException as exc:
        # The connection's replies are out of step (or it is gone): never reuse it.
        with contextlib.suppress(Exception):
            await conn.disconnect()
        if isinstance(exc, RedisConnectionError) and is_cluster(client):
            await _refresh(client)  # a failover: the slot has a new primary
        raise
    finally:
        await node.release(conn)


def _acked(reply: Any) -> int:
    if isinstance(reply, BaseException):
        # WAIT refused (an ACL, a server without it) while the write may have happened:
        # nothing is confirmed, and the send must not pass for refused.
        _log.warning("wait_refused", error=str(reply))
        return 0
    return int(reply)


async def _reply(conn: Any) -> Any:
    try:
        return await conn.read_response()
    except ResponseError as exc:
        return exc


async def _refresh(client: RedisClient) -> None:
    manager: Any = getattr(client, "nodes_manager", None)
    if manager is not None:
        with contextlib.suppress(Exception):
            await manager.initialize()
