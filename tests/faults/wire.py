"""Raw ready-stream entries, written by hand as another client (a bug, a rolling upgrade) might.

This module MIRRORS the library's wire format on purpose, so that the garbage tests can
write entries the library did not write. It is read from (never imported from):

- ``redis/keys.py``: a queue's keys share the tag ``<prefix>:{<type>:<instance>}``; its
  ready streams are ``<tag>:ready:9`` (HIGH), ``<tag>:ready:5`` (NORMAL) and
  ``<tag>:ready:1`` (LOW); ``CONSUMER_GROUP = "workers"`` is created on each of them.
- ``redis/scripts/queue_common.lua`` / ``queue_send.lua``: an entry holds ``i`` message id,
  ``m`` envelope JSON, ``a`` deliveries before this entry, ``e`` last error, ``x`` expiry
  (ms, ``0`` = never), ``t`` first enqueue time (ms).

If the library changes its wire format, update this mirror (a garbage test that suddenly
passes or fails for an unrelated reason is the hint).
"""

from __future__ import annotations

import time
from typing import Any, cast

import redis.asyncio as aioredis

from tta_agent_coordination import AgentId, AgentMessage

CONSUMER_GROUP = "workers"
"""Mirror of ``redis/keys.py`` ``CONSUMER_GROUP``."""

NORMAL_PRIORITY_SUFFIX = "5"
"""Mirror of ``MessagePriority.NORMAL.value``: the NORMAL ready stream's suffix."""


def ready_stream(prefix: str, agent: AgentId, suffix: str = NORMAL_PRIORITY_SUFFIX) -> str:
    """The key of ``agent``'s ready stream (NORMAL priority by default) under ``prefix``."""
    return f"{prefix}:{{{agent}}}:ready:{suffix}"


def well_formed_fields(message: AgentMessage) -> dict[str, str]:
    """The fields the send script writes for ``message`` (never delivered, no expiry)."""
    return {
        "i": message.message_id,
        "m": message.model_dump_json(exclude_none=True),
        "a": "0",
        "e": "",
        "x": "0",
        "t": str(int(time.time() * 1000)),
    }


def garbage_fields(kind: str, message: AgentMessage) -> dict[str, str]:
    """A well-formed entry of ``message`` broken in the way ``kind`` names (issue 23 items 1-2).

    Kinds: ``empty_t``, ``non_numeric_t``, ``missing_e``, ``missing_x``, ``non_numeric_a``,
    ``wrong_fields`` (none of the expected fields; the message id is kept in a stray field
    so that a test can find it in the dead-letter queue).
    """
    fields = well_formed_fields(message)
    if kind == "empty_t":
        fields["t"] = ""
    elif kind == "non_numeric_t":
        fields["t"] = "yesterday"
    elif kind == "missing_e":
        del fields["e"]
    elif kind == "missing_x":
        del fields["x"]
    elif kind == "non_numeric_a":
        fields["a"] = "many"
    elif kind == "wrong_fields":
        fields = {"kind": "not-an-entry", "payload": message.message_id}
    else:
        raise ValueError(f"unknown garbage kind {kind!r}")
    return fields


async def add_raw_entry(
    client: aioredis.Redis, prefix: str, agent: AgentId, fields: dict[str, str]
) -> str:
    """XADD ``fields`` to ``agent``'s NORMAL ready stream, as another client would; its id."""
    entry_id = await client.xadd(ready_stream(prefix, agent), cast(Any, fields))
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


async def destroy_group(client: aioredis.Redis, prefix: str, agent: AgentId) -> int:
    """Remove the consumer group from ``agent``'s NORMAL ready stream (``XGROUP DESTROY``)."""
    return int(await client.xgroup_destroy(ready_stream(prefix, agent), CONSUMER_GROUP))
