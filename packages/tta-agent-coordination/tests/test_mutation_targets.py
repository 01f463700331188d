"""Exact-value tests of small pure functions, written to kill mutants (scripts/mutation).

Key names are part of the on-Redis format: a changed name strands existing data, so each
one is pinned here.
"""

from __future__ import annotations

import pytest

from tta_agent_coordination import AgentId, MessagePriority, MessageType
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.redis.keys import CONSUMER_GROUP, CONSUMER_NAME, KeySpace

A = AgentId("planner", "p1")


def test_registry_and_subscription_key_names() -> None:
    keys = KeySpace("pre")
    assert keys.queue_index == "pre:queues"
    assert keys.subscribers(MessageType.EVENT) == "pre:{_subs}:by_type:event"
    assert keys.subscriptions == "pre:{_subs}:index"
    assert keys.reply_inbox("abc") == "pre:{_reply:abc}:inbox"
    assert keys.registry_tag == "pre:{_registry}"
    assert keys.registry_agent(A) == "pre:{_registry}:agent:planner:p1"
    assert keys.registry_agent(A) == keys.registry_agent_head + str(A)
    assert keys.registry_state(A) == "pre:{_registry}:state:planner:p1"
    assert keys.registry_liveness == "pre:{_registry}:alive"
    assert keys.registry_capability("plan") == "pre:{_registry}:cap:plan"
    assert keys.registry_type("planner") == "pre:{_registry}:type:planner"
    assert keys.registry_events == "pre:{_registry}:events"


def test_consumer_group_and_consumer_names() -> None:
    # Every ready stream carries this group; the Lua scripts get both names in ARGV.
    assert CONSUMER_GROUP == "workers"
    assert CONSUMER_NAME == "lease"


def test_breaker_keys_round_trip() -> None:
    keys = KeySpace("pre")
    assert keys.breaker_state("redis") == "pre:{_breaker:redis}:state"
    assert keys.breaker_scan_pattern == "pre:{_breaker:*}:state"
    assert keys.breaker_from_key(keys.breaker_state("redis")) == "redis"
    assert keys.breaker_from_key("pre:{_breaker:}:state") is None
    assert keys.breaker_from_key("other:{_breaker:x}:state") is None
    assert keys.breaker_from_key("pre:{_breaker:x}:stat") is None


def test_queue_keys_and_agent_from_key() -> None:
    keys = KeySpace("pre")
    assert keys.queue_scan_pattern == f"pre:{{*}}:ready:{MessagePriority.NORMAL.value}"
    queue = keys.queue(A)
    assert queue.ready_for(MessagePriority.HIGH).startswith("pre:{planner:p1}:ready:")
    assert keys.agent_from_key(queue.ready_for(MessagePriority.LOW)) == A
    assert keys.agent_from_key("other:{planner:p1}:ready:5") is None
    assert keys.agent_from_key("pre:{_registry}:alive") is None
    assert keys.agent_from_key("pre:{planner:p1") is None
    assert keys.agent_from_key("pre:{bad id!}:x") is None
    # As in Redis Cluster, the hash tag ends at the first "}" after the "{".
    assert keys.agent_from_key("pre:{planner:p1}:x}") == A
    assert keys.agent_from_key("pre:{planner:p1}}") == A


@pytest.mark.parametrize("prefix", ["", "a b", "x{y}", "a*", "p" * 65])
def test_invalid_prefixes(prefix: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        KeySpace(prefix)
    assert str(caught.value) == (
        f"invalid key prefix {prefix!r}: use 1-64 characters from letters, digits, "
        "'_', '.', '-', ':' (no braces or glob characters)"
    )


@pytest.mark.parametrize("prefix", ["a", "ao", "a.b-c:d_e", "p" * 64])
def test_valid_prefixes(prefix: str) -> None:
    assert KeySpace(prefix).prefix == prefix
