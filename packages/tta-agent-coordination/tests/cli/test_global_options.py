"""The root options also work after the command (``tta-coord queues --redis-url URL``)."""

from __future__ import annotations

import json

import pytest

from tta_agent_coordination import AgentId
from tta_agent_coordination.cli.connect import CliState

from .helpers import dead_letter, send

A = AgentId("planner", "p1")
WIDE = {"COLUMNS": "200"}


def test_options_after_the_command_reach_it(runner, cli, redis_url, prefix) -> None:
    send(redis_url, prefix, A, 2)
    result = runner.invoke(
        cli, ["queues", "--json", "--redis-url", redis_url, "--key-prefix", prefix], env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert [row["queue"] for row in json.loads(result.stdout)] == [str(A)]
    # The "--opt=value" form, and in a sub-group's command (dlq list).
    dead_letter(redis_url, prefix, A, 1)
    result = runner.invoke(
        cli, ["dlq", "list", str(A), f"--redis-url={redis_url}", f"--key-prefix={prefix}"], env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert "1 dead letter" in result.stdout or str(A) in result.stdout


def test_an_option_after_the_command_wins_over_the_same_before_it(
    runner, cli, redis_url, prefix
) -> None:
    send(redis_url, prefix, A, 1)
    result = runner.invoke(
        cli,
        [
            *("--redis-url", "redis://nohost.invalid:1/0", "queues", "--json"),
            *("--redis-url", redis_url, "--key-prefix", prefix),
        ],
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    assert [row["queue"] for row in json.loads(result.stdout)] == [str(A)]


def test_a_flag_after_the_command_sets_the_root_setting(runner, cli, redis_url, prefix) -> None:
    seen: list[CliState] = []
    original = CliState.__init__

    def spy(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        seen.append(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CliState, "__init__", spy)
        result = runner.invoke(
            cli, ["queues", "--redis-url", redis_url, "--key-prefix", prefix, "--json-logs"]
        )
        assert result.exit_code == 0, result.output
        assert seen[-1].overrides["json_logs"] is True
        result = runner.invoke(
            cli, ["--json-logs", "queues", "--console-logs", "--redis-url", redis_url]
        )
        assert result.exit_code == 0, result.output
        assert seen[-1].overrides["json_logs"] is False


def test_a_missing_value_is_a_usage_error(runner, cli) -> None:
    result = runner.invoke(cli, ["queues", "--redis-url"])
    assert result.exit_code == 2
    assert "requires an argument" in result.output


def test_an_argument_after_double_dash_is_left_alone(runner, cli, redis_url, prefix) -> None:
    # "--redis-url" after "--" is an agent argument of queues, not an option: it is
    # refused as an agent id, not taken as the server.
    result = runner.invoke(
        cli, ["--redis-url", redis_url, "--key-prefix", prefix, "queues", "--", "--redis-url"]
    )
    assert result.exit_code != 0
    assert "--redis-url" in result.output


def test_a_commands_own_option_of_the_same_name_still_works(runner, cli) -> None:
    # `demo` declares --redis-url itself: it still reaches the command, which then fails
    # to reach this server (and says so).
    result = runner.invoke(
        cli, ["demo", "--redis-url", "redis://nohost.invalid:1/0", "--no-live"], env=WIDE
    )
    assert result.exit_code != 0
    assert "nohost.invalid" in result.output
