"""Issue 21 item 6: the operator's rough edges of ``tta-coord``, each with its test."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import re
import socketserver
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    FailureType,
    MessagePriority,
    MessageType,
    RedisAgentRegistry,
    RedisMessageCoordinator,
)
from tta_agent_coordination.cli import build_app
from tta_agent_coordination.runtime.worker import AgentWorker
from tta_agent_coordination.testing import real_redis

from .helpers import SENDER, dead_letter, register, send, stats, with_coordinator

A = AgentId("planner", "p1")
LONG = AgentId("narrative_generator", "worker-0123456789abcdef")


def invoke(runner: CliRunner, app: typer.Typer, url: str, prefix: str, *args: str, **kw):
    env = {"COLUMNS": "200", **kw.pop("env", {})}
    return runner.invoke(app, ["--redis-url", url, "--key-prefix", prefix, *args], env=env, **kw)


def one_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def dead_letter_ids(url: str, prefix: str, agent: AgentId, ids: list[str]) -> None:
    """Dead-letter one message per id in ``ids`` (chosen ids, to share prefixes)."""

    async def fn(coord: RedisMessageCoordinator) -> None:
        for message_id in ids:
            msg = AgentMessage(
                message_id=message_id,
                sender=SENDER,
                recipient=agent,
                message_type=MessageType.REQUEST,
            )
            assert (await coord.send_message(SENDER, agent, msg)).delivered
            item = await coord.receive(agent, visibility_timeout=30)
            assert item is not None
            assert await coord.nack(agent, item.token, FailureType.PERMANENT, "bad")

    with_coordinator(url, prefix, fn)


# --- --json on recover, dlq replay, dlq purge -----------------------------------------------


def test_recover_prints_json(runner, cli, redis_url, prefix) -> None:
    send(redis_url, prefix, A, 1)
    one = invoke(runner, cli, redis_url, prefix, "recover", str(A), "--json")
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout) == {"queue": str(A), "recovered": 0}
    every = invoke(runner, cli, redis_url, prefix, "recover", "--json")
    assert json.loads(every.stdout) == {"queue": None, "recovered": 0}


def test_dlq_replay_and_purge_print_json(runner, cli, redis_url, prefix) -> None:
    dead_letter(redis_url, prefix, A, 3)
    replayed = invoke(runner, cli, redis_url, prefix, "dlq", "replay", str(A), "--json")
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout) == {
        "queue": str(A),
        "replayed": 3,
        "considered": 3,
        "left": 0,
    }
    dead_letter(redis_url, prefix, AgentId("writer"), 2)
    purged = invoke(runner, cli, redis_url, prefix, "dlq", "purge", "writer", "--yes", "--json")
    assert purged.exit_code == 0, purged.output
    assert json.loads(purged.stdout) == {"queue": "writer", "purged": 2}
    nothing = invoke(runner, cli, redis_url, prefix, "dlq", "purge", "writer", "--json")
    assert json.loads(nothing.stdout) == {"queue": "writer", "purged": 0}


def test_purge_asks_on_stderr_so_json_stays_clean(runner, cli, redis_url, prefix) -> None:
    dead_letter(redis_url, prefix, A, 2)
    result = invoke(runner, cli, redis_url, prefix, "dlq", "purge", str(A), "--json", input="y\n")
    assert result.exit_code == 0, result.output
    assert "Delete 2 dead letters" in result.stderr
    # click's test runner echoes the typed answer to stdout, as a terminal would show it
    echoed, _, document = result.stdout.partition("\n")
    assert echoed.strip() == "y"
    assert json.loads(document) == {"queue": str(A), "purged": 2}


# --- dlq replay --id PREFIX -------------------------------------------------------------------


def test_replay_by_a_unique_prefix(runner, cli, redis_url, prefix) -> None:
    dead_letter_ids(redis_url, prefix, A, ["job-1aaaaa", "job-2bbbbb", "other-0001"])
    result = invoke(runner, cli, redis_url, prefix, "dlq", "replay", str(A), "--id", "job-2")
    assert result.exit_code == 0, result.output
    assert "Replayed 1 of 1" in result.stdout
    after = stats(redis_url, prefix, A)
    assert (after.dead, after.ready[MessagePriority.NORMAL]) == (2, 1)
    listed = invoke(runner, cli, redis_url, prefix, "dlq", "list", str(A), "--json")
    assert [letter["message"]["message_id"] for letter in json.loads(listed.stdout)] == [
        "job-1aaaaa",
        "other-0001",
    ]


@pytest.mark.parametrize(
    ("ids", "fragment"),
    [
        (["nope"], "no dead letter of planner:p1 has a message id starting with 'nope'"),
        (["job-"], "'job-' matches 2 dead letters of planner:p1 (job-1aaaaa, job-2bbbbb)"),
        # One bad id among good ones: nothing is replayed.
        (["other-0001", "nope"], "starting with 'nope'"),
    ],
)
def test_replay_by_an_unknown_or_ambiguous_prefix_fails(
    runner, cli, redis_url, prefix, ids: list[str], fragment: str
) -> None:
    # It used to replay 0 and exit 0.
    dead_letter_ids(redis_url, prefix, A, ["job-1aaaaa", "job-2bbbbb", "other-0001"])
    args = [arg for i in ids for arg in ("--id", i)]
    result = invoke(runner, cli, redis_url, prefix, "dlq", "replay", str(A), *args)
    assert fragment in one_error(result, 1)
    assert stats(redis_url, prefix, A).dead == 3


def test_an_exact_id_wins_over_longer_ids_it_prefixes(runner, cli, redis_url, prefix) -> None:
    dead_letter_ids(redis_url, prefix, A, ["job-000", "job-0001"])
    result = invoke(runner, cli, redis_url, prefix, "dlq", "replay", str(A), "--id", "job-000")
    assert result.exit_code == 0, result.output
    assert stats(redis_url, prefix, A).dead == 1


# --- queues that never existed ---------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["queues", "nosuchagent"],
        ["queues", "nosuchagent", "--json"],
        ["queues", "nosuchagent", "--watch", "--iterations", "1"],
        ["dlq", "list", "nosuchagent"],
        ["dlq", "replay", "nosuchagent"],
        ["dlq", "purge", "nosuchagent"],
        ["dlq", "purge", "nosuchagent", "--yes"],
    ],
)
def test_a_queue_that_never_existed_is_an_error(runner, cli, redis_url, prefix, command) -> None:
    send(redis_url, prefix, A, 1)  # the prefix has queues, just not that one
    result = invoke(runner, cli, redis_url, prefix, *command)
    message = one_error(result, 1)
    assert f"no such queue under prefix {prefix!r}: nosuchagent" in message
    assert result.stdout == ""


def test_several_missing_queues_are_named_together(runner, cli, redis_url, prefix) -> None:
    send(redis_url, prefix, A, 1)
    result = invoke(runner, cli, redis_url, prefix, "queues", str(A), "ghost", "spectre:s1")
    assert "no such queues under prefix" in (message := one_error(result, 1))
    assert "ghost, spectre:s1" in message


def test_a_registered_agent_without_messages_has_a_queue(runner, cli, redis_url, prefix) -> None:
    idle = AgentId("idle", "i1")
    register(redis_url, prefix, [idle])
    result = invoke(runner, cli, redis_url, prefix, "queues", str(idle), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["queue"] == str(idle)
    purge = invoke(runner, cli, redis_url, prefix, "dlq", "purge", str(idle))
    assert purge.exit_code == 0, purge.output
    assert "No dead letters" in purge.stdout


def test_a_type_queue_exists_while_any_instance_is_registered(
    runner, cli, redis_url, prefix
) -> None:
    register(redis_url, prefix, [AgentId("scout", "s7")])
    result = invoke(runner, cli, redis_url, prefix, "queues", "scout", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["queue"], row["type_wide"]) == ("scout", True)
    other = invoke(runner, cli, redis_url, prefix, "queues", "ranger")
    assert "no such queue" in one_error(other, 1)


def test_a_queue_with_only_dead_letters_exists(runner, cli, redis_url, prefix) -> None:
    dead_letter(redis_url, prefix, A, 1)
    with_coordinator(redis_url, prefix, lambda coord: coord.recover_pending(None))
    result = invoke(runner, cli, redis_url, prefix, "dlq", "purge", str(A), "--yes")
    assert result.exit_code == 0, result.output
    assert "Purged 1" in result.stdout


# --- 80 columns -------------------------------------------------------------------------------


def test_ids_are_whole_in_80_columns(runner, cli, redis_url, prefix) -> None:
    # "calculator:de…": rich cut ids to make a table fit the terminal.
    register(redis_url, prefix, [LONG])
    ids = dead_letter(redis_url, prefix, LONG, 2)
    narrow = {"env": {"COLUMNS": "80"}}
    for command in (["agents"], ["queues"], ["dlq", "list", str(LONG)]):
        result = invoke(runner, cli, redis_url, prefix, *command, **narrow)
        assert result.exit_code == 0, result.output
        assert str(LONG) in result.stdout, result.stdout
        assert all(len(line) <= 80 for line in result.stdout.splitlines()), result.stdout
    listed = invoke(runner, cli, redis_url, prefix, "dlq", "list", str(LONG), **narrow)
    for message_id in ids:
        assert message_id in listed.stdout
    assert str(SENDER) in listed.stdout


def test_a_wide_terminal_shows_dead_letters_as_a_table(runner, cli, redis_url, prefix) -> None:
    ids = dead_letter(redis_url, prefix, LONG, 1)
    result = invoke(runner, cli, redis_url, prefix, "dlq", "list", str(LONG))
    row = next(line for line in result.stdout.splitlines() if ids[0] in line)
    assert str(SENDER) in row  # one row per dead letter
    assert "permanent" in row


# --- a server that is not Redis ---------------------------------------------------------------


class _HttpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.recv(1024)
        self.request.sendall(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )


@pytest.fixture
def http_port() -> Iterator[int]:
    """A tiny local TCP server that answers everything as an HTTP server would."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _HttpHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(
    "command", [["queues"], ["agents"], ["dlq", "list", "a"], ["send", "a", "{}"]]
)
def test_an_http_port_gets_a_hint_not_a_protocol_error(
    runner: CliRunner, cli, http_port: int, command: list[str]
) -> None:
    url = f"redis://user:s3cret@127.0.0.1:{http_port}/0"
    result = runner.invoke(cli, ["--redis-url", url, *command])
    message = one_error(result, 1)
    assert f"redis://user:***@127.0.0.1:{http_port}/0" in message
    assert "does not speak the Redis protocol" in message
    assert "HTTP" in message
    assert "s3cret" not in result.output


def test_doctor_on_an_http_port_says_what_it_is(runner: CliRunner, cli, http_port: int) -> None:
    url = f"redis://127.0.0.1:{http_port}/0"
    result = runner.invoke(cli, ["--redis-url", url, "doctor", "--json"])
    assert result.exit_code == 1
    connect = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "connect")
    assert connect["status"] == "fail"
    assert "does not speak the Redis protocol" in connect["detail"]


# --- shell completion -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shell", "fragment"),
    [
        ("bash", "complete -o default -F _tta_coord_completion tta-coord"),
        ("zsh", "compdef _tta_coord_completion tta-coord"),
    ],
)
def test_show_completion_prints_a_script_for_tta_coord(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, shell: str, fragment: str
) -> None:
    # typer detects the shell from the process tree; its switch makes the option take the
    # shell's name instead, so the test does not depend on what runs pytest. It is read
    # when the command is built, so the app is built after it is set.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = runner.invoke(
        build_app(plugins=False), ["--show-completion", shell], prog_name="tta-coord"
    )
    assert result.exit_code == 0, result.output
    assert f"_TTA_COORD_COMPLETE=complete_{shell}" in result.stdout
    assert fragment in result.stdout


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [("tta-coord dl", "1", {"dlq"}), ("tta-coord dlq r", "2", {"replay"})],
)
def test_completion_completes_commands(runner: CliRunner, cli, words, cword, expected) -> None:
    env = {"_TTA_COORD_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword}
    result = runner.invoke(cli, [], prog_name="tta-coord", env=env)
    assert result.exit_code == 0, result.output
    assert set(result.stdout.split()) == expected


# --- send and request -------------------------------------------------------------------------


def test_send_enqueues_one_message(runner, cli, redis_url, prefix) -> None:
    register(redis_url, prefix, [A])
    result = invoke(
        runner,
        cli,
        redis_url,
        prefix,
        "send",
        str(A),
        '{"kind": "plan", "n": 1}',
        "--priority",
        "high",
        "--type",
        "event",
        "--message-id",
        "msg-0001",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["delivered"] is True
    assert result.stderr == ""  # a registered agent: no warning

    async def read(coord: RedisMessageCoordinator) -> AgentMessage:
        item = await coord.receive(A)
        assert item is not None
        return item.message

    message = with_coordinator(redis_url, prefix, read)
    assert (message.message_id, message.priority) == ("msg-0001", MessagePriority.HIGH)
    assert message.message_type is MessageType.EVENT
    assert message.payload == {"kind": "plan", "n": 1}
    assert str(message.sender) == "tta-coord:cli"
    assert message.reply_to is None  # nobody waits for a reply to a send


def test_send_reads_stdin_and_warns_about_an_unknown_recipient(
    runner, cli, redis_url, prefix
) -> None:
    result = invoke(runner, cli, redis_url, prefix, "send", "ghost", "-", input='{"a": 1}')
    assert result.exit_code == 0, result.output
    assert "Sent " in result.stdout
    assert "no agent ghost is registered" in result.stderr
    assert stats(redis_url, prefix, AgentId("ghost")).ready[MessagePriority.NORMAL] == 1


def test_send_to_a_full_queue_exits_1(runner, cli, redis_url, prefix) -> None:
    full = AgentId("full")

    async def fill(coord: RedisMessageCoordinator) -> None:
        size = coord.config.queue_size  # the CLI's coordinator has the default size too
        for start in range(0, size, 1000):
            batch = [
                AgentMessage(sender=SENDER, recipient=full, message_type=MessageType.EVENT)
                for _ in range(min(1000, size - start))
            ]
            assert all(r.delivered for r in await coord.send_many(batch))

    with_coordinator(redis_url, prefix, fill)
    result = invoke(runner, cli, redis_url, prefix, "send", str(full), "{}")
    assert "was not enqueued for full: queue full" in one_error(result, 1)
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["send", "a", "{not json"], "the payload is not valid JSON"),
        (["send", "a", "[1, 2]"], "must be a JSON object"),
        (["send", "a", "{}", "--priority", "urgent"], "unknown priority 'urgent'"),
        (["send", "a", "{}", "--type", "shout"], "unknown message type 'shout'"),
        (["send", "bad agent", "{}"], "invalid agent id"),
        (["send", "a", "{}", "--message-id", "m1"], "invalid message: message_id: String"),
        (["request", "a", "{}", "--sender", "bad sender!"], "invalid agent id"),
        (["request", "a", "3"], "must be a JSON object"),
    ],
)
def test_send_and_request_usage_errors_exit_2(runner, cli, args, fragment) -> None:
    result = runner.invoke(cli, ["--redis-url", "redis://127.0.0.1:1/0", *args])
    assert fragment in one_error(result, 2)


def test_request_times_out_with_exit_1(runner, cli, redis_url, prefix) -> None:
    register(redis_url, prefix, [A])  # registered, but nothing answers
    result = invoke(runner, cli, redis_url, prefix, "request", str(A), "{}", "--timeout", "0.3")
    message = one_error(result, 1)
    assert "got no reply within 0.3s" in message
    assert "did not answer in time" not in message  # not reported as a Redis timeout
    assert result.stdout == ""


async def test_request_prints_the_reply(runner, cli, redis_url, prefix) -> None:
    client = await real_redis(redis_url)
    coord = RedisMessageCoordinator(client, key_prefix=prefix)
    registry = RedisAgentRegistry(client, key_prefix=prefix)
    worker = AgentWorker(coord, registry, A, poll_interval=0.1)

    @worker.on_request()
    async def add(ctx) -> dict[str, int]:
        return {"sum": ctx.payload["a"] + ctx.payload["b"]}

    await worker.start()
    try:
        args = ("request", str(A), '{"a": 2, "b": 3}', "--timeout", "20")
        plain = await asyncio.to_thread(invoke, runner, cli, redis_url, prefix, *args)
        whole = await asyncio.to_thread(invoke, runner, cli, redis_url, prefix, *args, "--json")
    finally:
        await worker.stop(grace_period=0)
        await registry.aclose()
        await coord.aclose()
        await client.aclose()
    assert plain.exit_code == 0, plain.output
    assert json.loads(plain.stdout) == {"sum": 5}
    assert whole.exit_code == 0, whole.output
    reply = json.loads(whole.stdout)
    assert reply["message_type"] == "response"
    assert reply["payload"] == {"sum": 5}


async def test_request_reports_a_failed_handler(runner, cli, redis_url, prefix) -> None:
    from tta_agent_coordination.errors import PermanentError

    client = await real_redis(redis_url)
    coord = RedisMessageCoordinator(client, key_prefix=prefix)
    registry = RedisAgentRegistry(client, key_prefix=prefix)
    worker = AgentWorker(coord, registry, A, poll_interval=0.1)

    @worker.on_request()
    async def refuse(ctx) -> None:
        raise PermanentError("cannot plan that")

    await worker.start()
    try:
        args = ("request", str(A), "{}", "--timeout", "20")
        result = await asyncio.to_thread(invoke, runner, cli, redis_url, prefix, *args)
    finally:
        await worker.stop(grace_period=0)
        await registry.aclose()
        await coord.aclose()
        await client.aclose()
    assert "cannot plan that" in one_error(result, 1)


# --- queues --watch ---------------------------------------------------------------------------


def test_queues_watch_refreshes(runner, cli, redis_url, prefix) -> None:
    send(redis_url, prefix, A, 2)
    args = ("queues", "--watch", "--iterations", "2", "--interval", "0.1")
    result = invoke(runner, cli, redis_url, prefix, *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.count(f"Queues ({prefix}) at ") == 2
    assert result.stdout.count(str(A)) == 2

    lines = invoke(runner, cli, redis_url, prefix, *args, str(A), "--json").stdout.splitlines()
    assert len(lines) == 2
    frames = [json.loads(line) for line in lines]
    assert [frame["queues"][0]["normal"] for frame in frames] == [2, 2]
    assert all("time" in frame for frame in frames)


def test_queues_watch_needs_a_sane_interval(runner, cli, redis_url, prefix) -> None:
    result = invoke(runner, cli, redis_url, prefix, "queues", "--watch", "--interval", "0")
    assert result.exit_code == 2


# --- doctor's recommendations -----------------------------------------------------------------


PIP_INSTALL = re.compile(r"pip install '?([A-Za-z0-9_.-]+)(?:\[([a-z,]+)\])?")


def _known_distributions() -> dict[str, set[str]]:
    """Every distribution the workspace locks (its members included), with its extras."""
    root = Path(__file__).parents[4]
    lock = tomllib.loads((root / "uv.lock").read_text())
    return {
        package["name"]: set(package.get("optional-dependencies", {}))
        for package in lock["package"]
    }


def test_doctor_recommends_only_packages_that_exist() -> None:
    # It recommended "pip install tta-agents", a package that does not exist.
    known = _known_distributions()
    module = importlib.import_module("tta_agent_coordination.features")
    named = 0
    for spec in module._SPECS:
        for name, extras in PIP_INSTALL.findall(spec.install):
            named += 1
            canonical = re.sub(r"[-_.]+", "-", name).lower()
            assert canonical in known, f"{spec.name}: {spec.install!r} names no known package"
            for extra in filter(None, extras.split(",")):
                assert extra in known[canonical], f"{spec.name}: no extra {extra!r}"
    assert named >= 4  # postgres, prometheus, hiredis, fakeredis: the check checked them


def test_doctor_shows_the_honest_hint_for_the_tta_extension(
    runner, cli, redis_url, prefix, monkeypatch
):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, package=None: None if name == "tta_agents" else real(name, package),
    )
    result = invoke(runner, cli, redis_url, prefix, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["tta_agents"]["status"] == "skip"
    assert "not on PyPI yet" in checks["tta_agents"]["detail"]
    assert "pip install tta-agents" not in result.stdout


def test_doctor_reports_the_installed_tta_extension(runner, cli, redis_url, prefix):
    result = invoke(runner, cli, redis_url, prefix, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["tta_agents"]["status"] == "ok"


def test_queues_watch_redraws_in_place_on_a_terminal(runner, cli, redis_url, prefix) -> None:
    send(redis_url, prefix, A, 1)
    args = ("queues", "--watch", "--iterations", "2", "--interval", "0.1")
    # TTY_COMPATIBLE makes rich treat the runner's output as a terminal.
    result = invoke(runner, cli, redis_url, prefix, *args, env={"TTY_COMPATIBLE": "1"})
    assert result.exit_code == 0, result.output
    assert "\x1b[1A\x1b[2K" in result.stdout  # the first frame erased, not followed
    assert str(A) in result.stdout
