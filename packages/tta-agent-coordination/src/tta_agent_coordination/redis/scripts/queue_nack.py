"""Typed call of ``queue_nack.lua``: settle a delivery as failed (retry or dead-letter)."""

from __future__ import annotations

from typing import Any, NamedTuple

from tta_agent_coordination.redis.codec import text
from tta_agent_coordination.redis.keys import QueueKeys
from tta_agent_coordination.redis.lua import ScriptCall
from tta_agent_coordination.redis.scripts.queue_common import ARGV_HEAD

__all__ = ["DEAD_LETTERED", "NAME", "RETRY_SCHEDULED", "UNKNOWN_TOKEN", "NackOutcome", "call"]

NAME = "queue_nack"

UNKNOWN_TOKEN = 0
"""Code of an unknown or already settled token (nothing changed)."""
RETRY_SCHEDULED = 1
"""Code of a delivery scheduled for another attempt."""
DEAD_LETTERED = 2
"""Code of a delivery moved to the dead-letter queue."""


class NackOutcome(NamedTuple):
    """What a nack did; the message fields are empty for :data:`UNKNOWN_TOKEN`."""

    code: int
    message_id: str
    first_enqueued_ms: int
    deliveries: int


_UNKNOWN = NackOutcome(UNKNOWN_TOKEN, "", 0, 0)


def _parse(raw: list[Any]) -> NackOutcome:
    code = int(raw[0])
    if code == UNKNOWN_TOKEN:
        return _UNKNOWN
    return NackOutcome(code, text(raw[1]), int(raw[2]), int(raw[3]))


def call(
    queue: QueueKeys,
    *,
    token: str,
    failure: str,
    error: str,
    retry_attempts: int,
    backoff_base_ms: float,
    backoff_factor: float,
    backoff_max_ms: float,
    jitter_multiplier: float,
    dlq_max_len: int,
    dedupe_window_ms: int,
) -> ScriptCall[NackOutcome]:
    """Fail the delivery ``token`` of ``queue`` with ``failure`` (a ``FailureType`` value).

    The retry delay is ``backoff_base_ms * backoff_factor ** (deliveries - 1)``, capped at
    ``backoff_max_ms``, times ``jitter_multiplier`` (>= 1).
    """
    return ScriptCall(
        NAME,
        queue.all_keys,
        [
            *ARGV_HEAD,
            token,
            failure,
            error,
            retry_attempts,
            backoff_base_ms,
            backoff_factor,
            backoff_max_ms,
            jitter_multiplier,
            dlq_max_len,
            dedupe_window_ms,
        ],
        _parse,
    )
