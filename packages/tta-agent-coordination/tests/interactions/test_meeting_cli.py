"""``tta-coord meetings list|show|history|clock`` against the real Redis."""

import asyncio
import json
import time

import pytest
from typer.testing import CliRunner

from tta_agent_coordination.cli import build_app
from tta_agent_coordination.interactions import AgentMessaging
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import (
    real_redis,
)

pytestmark = pytest.mark.real_redis

HOST = AgentId("host", "h")
A = AgentId("agent", "a")


def seed(url: str, prefix: str, turn_duration: float) -> str:
    async def main() -> str:
        client = await real_redis(url)
        messaging = AgentMessaging(RedisMessageCoordinator(client, key_prefix=prefix))
        try:
            await messaging.register_organization("acme")
            for agent in (HOST, A):
                await messaging.register_agent(agent, organization="acme")
            mid = await messaging.meeting.create_meeting(
                HOST, [A], turn_duration=turn_duration, meeting_id="standup"
            )
            await messaging.meeting.attend_meeting(A, mid)
            await messaging.meeting.start_meeting(HOST, mid, {"topic": "cli"})
            return mid
        finally:
            await messaging.coordinator.aclose()
            await client.aclose()

    return asyncio.run(main())


def invoke(url: str, prefix: str, *args: str):
    return CliRunner().invoke(
        build_app(plugins=False), ["--redis-url", url, "--key-prefix", prefix, *args]
    )


def test_list_show_history_clock(redis_url: str, prefix: str) -> None:
    empty = invoke(redis_url, prefix, "meetings", "list")
    assert empty.exit_code == 0, empty.output
    assert "No meetings." in empty.output
    mid = seed(redis_url, prefix, turn_duration=0.2)
    listed = invoke(redis_url, prefix, "meetings", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [m["meeting_id"] for m in json.loads(listed.output)] == [mid]
    assert "standup" in invoke(redis_url, prefix, "meetings", "list").output
    shown = invoke(redis_url, prefix, "meetings", "show", mid, "--json")
    assert json.loads(shown.output)["current_speaker"] == {"type": "agent", "instance": "a"}
    table = invoke(redis_url, prefix, "meetings", "show", mid)
    assert "active" in table.output
    assert "agent:a" in table.output
    time.sleep(0.3)  # the turn's 0.2 s pass (the clock compares with the server clock)
    ticked = invoke(redis_url, prefix, "meetings", "clock", "--once")
    assert ticked.exit_code == 0, ticked.output
    assert "Timed out 1 turn(s)." in ticked.output
    lines = invoke(redis_url, prefix, "meetings", "history", mid, "--json").output.splitlines()
    types = [json.loads(line)["type"] for line in lines]
    assert types[-2:] == ["timed_out", "turn_changed"]
    text = invoke(redis_url, prefix, "meetings", "history", mid)
    assert "timed_out" in text.output
    assert "{'topic': 'cli'}" in text.output
    missing = invoke(redis_url, prefix, "meetings", "show", "nope")
    assert missing.exit_code == 1
    assert "no such meeting" in missing.output
