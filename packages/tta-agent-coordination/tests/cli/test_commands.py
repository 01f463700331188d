"""The CLI through typer's runner, against the real Redis, one key prefix per test."""

from __future__ import annotations

import asyncio
import json

import pytest
import typer
from typer.testing import CliRunner

from tta_agent_coordination import AgentId, MessagePriority
from tta_agent_coordination.cli import app as real_app
from tta_agent_coordination.redis.breaker_store import RedisBreakerStore
from tta_agent_coordination.resilience import CircuitBreaker, CircuitBreakerConfig
from tta_agent_coordination.testing import real_redis

from .helpers import dead_letter, register, send, stats, with_coordinator

A = AgentId("planner", "p1")
B = AgentId("writer")


def invoke(runner: CliRunner, app: typer.Typer, url: str, prefix: str, *args: str, **kw):
    # Wide enough that rich tables do not wrap ids (the runner is not a terminal: 80 columns).
    env = {"COLUMNS": "200", **kw.pop("env", {})}
    return runner.invoke(app, ["--redis-url", url, "--key-prefix", prefix, *args], env=env, **kw)


def test_version_and_help(runner: CliRunner) -> None:
    result = runner.invoke(real_app, ["--version"])
    assert result.exit_code == 0
    assert "tta-coord" in result.stdout
    result = runner.invoke(real_app, ["--help"])
    assert result.exit_code == 0
    for command in ("agents", "queues", "breakers", "dlq", "recover", "doctor", "worker"):
        assert command in result.stdout


def test_agents_lists_registrations(runner, cli, redis_url, prefix) -> None:
    result = invoke(runner, cli, redis_url, prefix, "agents")
    assert result.exit_code == 0, result.output
    assert "No agents registered" in result.stdout

    register(redis_url, prefix, [A, B])
    result = invoke(runner, cli, redis_url, prefix, "agents", "--json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["agent_id"] for r in records] == [str(A), str(B.concrete())]
    assert all(r["alive"] for r in records)

    table = invoke(runner, cli, redis_url, prefix, "agents")
    assert str(A) in table.stdout
    assert "planner agent" in table.stdout


def test_queues_shows_counts(runner, cli, redis_url, prefix) -> None:
    send(redis_url, prefix, A, 3)
    dead_letter(redis_url, prefix, B, 1)
    result = invoke(runner, cli, redis_url, prefix, "queues", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["queue"]: row for row in json.loads(result.stdout)}
    assert rows[str(A)]["normal"] == 3
    assert rows[str(A)]["dead"] == 0
    assert rows[str(B)]["dead"] == 1
    # B has no instance: its queue is the type queue, "any instance of writer"
    assert (rows[str(A)]["type_wide"], rows[str(B)]["type_wide"]) == (False, True)

    one = invoke(runner, cli, redis_url, prefix, "queues", str(B), "--json")
    assert [row["queue"] for row in json.loads(one.stdout)] == [str(B)]

    table = invoke(runner, cli, redis_url, prefix, "queues")
    assert table.exit_code == 0
    assert str(A) in table.stdout
    assert "(any instance)" in table.stdout


def test_dlq_list_replay_and_purge(runner, cli, redis_url, prefix) -> None:
    ids = dead_letter(redis_url, prefix, A, 5)

    listed = invoke(runner, cli, redis_url, prefix, "dlq", "list", str(A), "--json")
    assert listed.exit_code == 0, listed.output
    letters = json.loads(listed.stdout)
    assert [letter["message"]["message_id"] for letter in letters] == ids
    assert letters[0]["last_error"] == "bad [input]"
    table = invoke(runner, cli, redis_url, prefix, "dlq", "list", str(A), "--limit", "2")
    assert "bad [input]" in table.stdout
    assert "2 of 5" in table.stdout

    one = invoke(runner, cli, redis_url, prefix, "dlq", "replay", str(A), "--id", ids[2])
    assert one.exit_code == 0, one.output
    assert "Replayed 1 of 1" in one.stdout
    after = stats(redis_url, prefix, A)
    assert (after.dead, after.ready[MessagePriority.NORMAL]) == (4, 1)

    # The rest, one per round, so that several chunks (progress steps) run.
    rest = invoke(runner, cli, redis_url, prefix, "dlq", "replay", str(A), "--chunk", "1")
    assert rest.exit_code == 0, rest.output
    assert "Replayed 4 of 4" in rest.stdout
    after = stats(redis_url, prefix, A)
    assert (after.dead, after.ready[MessagePriority.NORMAL]) == (0, 5)

    empty = invoke(runner, cli, redis_url, prefix, "dlq", "replay", str(A))
    assert "No dead letters to replay" in empty.stdout

    dead_letter(redis_url, prefix, B, 2)
    refused = invoke(runner, cli, redis_url, prefix, "dlq", "purge", str(B), input="n\n")
    assert refused.exit_code == 1
    assert "Delete 2 dead letters" in refused.stderr  # the prompt is not a result
    assert stats(redis_url, prefix, B).dead == 2
    confirmed = invoke(runner, cli, redis_url, prefix, "dlq", "purge", str(B), input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert "Purged 2" in confirmed.stdout
    assert stats(redis_url, prefix, B).dead == 0

    dead_letter(redis_url, prefix, B, 1)
    forced = invoke(runner, cli, redis_url, prefix, "dlq", "purge", str(B), "--yes")
    assert forced.exit_code == 0
    assert stats(redis_url, prefix, B).dead == 0


def test_dlq_replay_skips_a_letter_whose_message_is_live(runner, cli, redis_url, prefix) -> None:
    # No dedupe window, so the same message id can be sent again while its letter is dead.
    ids = dead_letter(redis_url, prefix, A, 3, dedupe_window_s=0)
    send_again = ids[0]

    async def resend(coord) -> None:
        from tta_agent_coordination import AgentMessage, MessageType

        from .helpers import SENDER

        msg = AgentMessage(
            message_id=send_again, sender=SENDER, recipient=A, message_type=MessageType.REQUEST
        )
        assert (await coord.send_message(SENDER, A, msg)).delivered

    with_coordinator(redis_url, prefix, resend)
    result = invoke(runner, cli, redis_url, prefix, "dlq", "replay", str(A), "--chunk", "1")
    assert result.exit_code == 0, result.output
    assert "Replayed 2 of 3" in result.stdout
    assert "1 left in the DLQ" in result.stdout
    assert stats(redis_url, prefix, A).dead == 1


def test_dlq_lists_every_dead_letter_raw_if_undecodable(runner, cli, redis_url, prefix) -> None:
    # Issue 23 item 3: "No dead letters" was printed while queue_stats counted them.
    ids = dead_letter(redis_url, prefix, A, 1)

    async def write_garbage(coord) -> None:
        keys = coord.keys.queue(A)
        client = await real_redis(redis_url)
        try:
            await client.xadd(keys.dlq, {"i": "foreign-dead-1", "m": "{not json"})
            await client.xadd(keys.ready_for(MessagePriority.NORMAL), {"kind": "junk-entry"})
        finally:
            await client.aclose()
        assert await coord.receive(A) is None  # the junk entry is dead-lettered as malformed

    with_coordinator(redis_url, prefix, write_garbage)
    assert stats(redis_url, prefix, A).dead == 3

    listed = invoke(runner, cli, redis_url, prefix, "dlq", "list", str(A), "--json")
    assert listed.exit_code == 0, listed.output
    letters = json.loads(listed.stdout)
    assert [letter["undecodable"] for letter in letters] == [False, True, True]
    assert letters[0]["message"]["message_id"] == ids[0]
    assert letters[1]["message_id"] == "foreign-dead-1"
    assert letters[1]["fields"]["m"] == "{not json"
    assert letters[2]["failure_type"] == "malformed"
    assert "junk-entry" in letters[2]["fields"]["r"]

    table = invoke(runner, cli, redis_url, prefix, "dlq", "list", str(A))
    assert table.exit_code == 0, table.output
    assert "3 of 3" in table.stdout
    assert "foreign-dead-1" in table.stdout
    assert "2 of them cannot be delivered" in table.stdout
    assert "junk-entry" in table.stdout

    # replay moves the good one, keeps the two it cannot deliver; purge removes them
    replay = invoke(runner, cli, redis_url, prefix, "dlq", "replay", str(A), "--chunk", "1")
    assert replay.exit_code == 0, replay.output
    assert "Replayed 1 of 3" in replay.stdout
    assert "2 left in the DLQ" in replay.stdout
    assert stats(redis_url, prefix, A).dead == 2
    purge = invoke(runner, cli, redis_url, prefix, "dlq", "purge", str(A), "--yes")
    assert "Purged 2" in purge.stdout
    assert stats(redis_url, prefix, A).dead == 0


def test_recover_returns_expired_leases(runner, cli, redis_url, prefix) -> None:
    send(redis_url, prefix, A, 2)

    async def lease_briefly(coord) -> None:
        # One call: a second receive would itself reclaim the first expired lease.
        assert len(await coord.receive_batch(A, 2, visibility_timeout=0.001)) == 2
        await asyncio.sleep(0.05)  # let the leases run out before recovering

    with_coordinator(redis_url, prefix, lease_briefly)
    assert stats(redis_url, prefix, A).leased == 2
    result = invoke(runner, cli, redis_url, prefix, "recover", str(A))
    assert result.exit_code == 0, result.output
    assert "Recovered 2 messages" in result.stdout
    after = stats(redis_url, prefix, A)
    assert (after.leased, after.ready[MessagePriority.NORMAL]) == (0, 2)

    every = invoke(runner, cli, redis_url, prefix, "recover")
    assert every.exit_code == 0
    assert "Recovered 0 messages in every queue" in every.stdout


def test_breakers_lists_shared_state(runner, cli, redis_url, prefix) -> None:
    none = invoke(runner, cli, redis_url, prefix, "breakers")
    assert none.exit_code == 0
    assert "No shared circuit breakers" in none.stdout
    assert "in-process" in none.stdout

    async def trip() -> None:
        client = await real_redis(redis_url)
        try:
            store = RedisBreakerStore(client, key_prefix=prefix, timeout_s=2.0)
            config = CircuitBreakerConfig(failure_threshold=1, timeout_seconds=60)
            llm = CircuitBreaker("llm", config, store)
            ok = CircuitBreaker("search", config, store)

            async def boom() -> None:
                raise OSError("down")

            async def fine() -> int:
                return 1

            with pytest.raises(OSError, match="down"):
                await llm.call(boom)
            with pytest.raises(OSError, match="down"):
                await ok.call(boom)
            await ok.areset()
        finally:
            await client.aclose()

    asyncio.run(trip())
    result = invoke(runner, cli, redis_url, prefix, "breakers", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["llm"]["state"] == "open"
    assert 0 < rows["llm"]["retry_after_s"] <= 60
    assert rows["search"]["state"] == "closed"
    table = invoke(runner, cli, redis_url, prefix, "breakers")
    assert "llm" in table.stdout
    assert "open" in table.stdout


def test_doctor_passes_on_the_test_server(runner, cli, redis_url, prefix) -> None:
    result = invoke(runner, cli, redis_url, prefix, "doctor", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    by_name = {c["name"]: c for c in report["checks"]}
    for name in ("connect", "server version", "lua", "streams"):
        assert by_name[name]["status"] in {"ok", "warn"}, by_name[name]
    assert by_name["fakeredis"]["status"] == "ok"  # the testing extra is installed here
    table = invoke(runner, cli, redis_url, prefix, "doctor")
    assert "All required checks passed" in table.stdout
