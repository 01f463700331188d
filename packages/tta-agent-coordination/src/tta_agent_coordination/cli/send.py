"""``tta-coord send`` and ``tta-coord request``: poke an agent by hand.

``send`` enqueues one message and prints its outcome; ``request`` sends a request and
waits for the reply, which it prints (exit 1 when none comes in time).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, cast

import typer
from pydantic import ValidationError

from tta_agent_coordination.errors import RequestError
from tta_agent_coordination.models import AgentId, AgentMessage, MessagePriority, MessageType
from tta_agent_coordination.settings import CoordinationSettings

from .connect import get_state, open_redis, parse_agent, run_async
from .errors import CliError, CliUsageError, handle_errors, warn
from .output import JSON_OPTION, out_console, print_json
from .queues import missing_queues

__all__ = ["DEFAULT_SENDER", "parse_payload", "parse_priority", "register", "request", "send"]

DEFAULT_SENDER = "tta-coord:cli"
"""The sender of messages sent by hand unless ``--sender`` says otherwise."""

RECIPIENT_ARG: Any = typer.Argument(
    metavar="RECIPIENT", help="The recipient's agent id: type or type:instance."
)
PAYLOAD_ARG: Any = typer.Argument(
    metavar="PAYLOAD",
    help='The payload, a JSON object (e.g. \'{"kind": "add", "a": 1}\'); - reads it from stdin.',
)
SENDER_OPTION: Any = typer.Option("--sender", help="The sender's agent id.")
PRIORITY_OPTION: Any = typer.Option("--priority", "-p", help="low, normal or high.")


def register(app: typer.Typer) -> None:
    """Add ``send`` and ``request`` to ``app``."""
    app.command("send")(send)
    app.command("request")(request)


def parse_payload(text: str) -> dict[str, Any]:
    """The payload argument as a dict (``-``: standard input).

    Raises:
        CliUsageError: it is not valid JSON, or not a JSON object.
    """
    if text == "-":
        text = sys.stdin.read()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliUsageError(f"the payload is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CliUsageError(
            f'the payload must be a JSON object such as \'{{"kind": "add"}}\', '
            f"got a JSON {type(value).__name__}"
        )
    return cast("dict[str, Any]", value)  # JSON object keys are always strings


def parse_priority(text: str) -> MessagePriority:
    """``low``, ``normal`` or ``high`` (or 1, 5, 9) as a :class:`MessagePriority`.

    Raises:
        CliUsageError: any other value.
    """
    name = text.strip().upper()
    for priority in MessagePriority:
        if name in (priority.name, str(priority.value)):
            return priority
    raise CliUsageError(f"unknown priority {text!r}: use low, normal or high")


def _parse_type(text: str) -> MessageType:
    try:
        return MessageType(text.strip().lower())
    except ValueError:
        choices = ", ".join(t.value for t in MessageType)
        raise CliUsageError(f"unknown message type {text!r}: use {choices}") from None


async def _warn_if_nobody_listens(client: Any, coord: Any, recipient: AgentId) -> None:
    if await missing_queues(client, coord, [recipient]):
        warn(
            f"no agent {recipient} is registered and it has no queue yet: the message waits "
            "until a worker for it starts (check the agent id and --key-prefix)"
        )


def send(
    ctx: typer.Context,
    recipient: Annotated[str, RECIPIENT_ARG],
    payload: Annotated[str, PAYLOAD_ARG],
    message_type: Annotated[
        str, typer.Option("--type", "-t", help="request, response or event.")
    ] = "request",
    priority: Annotated[str, PRIORITY_OPTION] = "normal",
    sender: Annotated[str, SENDER_OPTION] = DEFAULT_SENDER,
    message_id: Annotated[
        str | None,
        typer.Option("--message-id", help="The message id (sending it again is not a duplicate)."),
    ] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Send one message to RECIPIENT's queue and print its message id.

    A request sent this way expects no reply (use 'tta-coord request' to wait for one).
    Exits with 1 when the message is not enqueued (e.g. the queue is full).
    """
    state = get_state(ctx)
    with handle_errors():
        to = parse_agent(recipient)
        source = parse_agent(sender)
        body = parse_payload(payload)
        fields: dict[str, Any] = {
            "sender": source,
            "recipient": to,
            "message_type": _parse_type(message_type),
            "payload": body,
            "priority": parse_priority(priority),
        }
        if message_id is not None:
            if not message_id.strip():
                raise CliUsageError("--message-id needs a value")
            fields["message_id"] = message_id.strip()
        try:
            message = AgentMessage(**fields)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise CliUsageError(f"invalid message: {problems}") from None

    async def work(settings: CoordinationSettings) -> dict[str, Any]:
        async with open_redis(settings) as client:
            coord = settings.build_coordinator(client)
            try:
                await _warn_if_nobody_listens(client, coord, to)
                result = await coord.send_message(source, to, message)
            finally:
                await coord.aclose()
        return result.model_dump(mode="json")

    result = run_async(state, work)
    if as_json:
        print_json(result)
    elif result["delivered"]:
        note = " (a duplicate: already in the queue)" if result["duplicate"] else ""
        out_console().print(f"Sent {result['message_id']} to {to}{note}.")
    if not result["delivered"]:
        with handle_errors():
            raise CliError(
                f"message {result['message_id']} was not enqueued for {to}: "
                f"{result['error'] or result['status']}"
            )


def request(
    ctx: typer.Context,
    recipient: Annotated[str, RECIPIENT_ARG],
    payload: Annotated[str, PAYLOAD_ARG],
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0.001,
            help="Seconds to wait for the reply (default: TTA_COORD_REQUEST_TIMEOUT_S, 30).",
            show_default=False,
        ),
    ] = None,
    priority: Annotated[str, PRIORITY_OPTION] = "normal",
    sender: Annotated[str, SENDER_OPTION] = DEFAULT_SENDER,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole reply message, not only its payload.")
    ] = False,
) -> None:
    """Send a request to RECIPIENT, wait for the reply and print its payload as JSON.

    Exits with 1 when no reply comes within --timeout, or the handler failed for good.
    """
    state = get_state(ctx)
    with handle_errors():
        to = parse_agent(recipient)
        source = parse_agent(sender)
        body = parse_payload(payload)
        level = parse_priority(priority)

    async def work(settings: CoordinationSettings) -> AgentMessage:
        wait = timeout if timeout is not None else settings.request_timeout_s
        async with open_redis(settings) as client:
            coord = settings.build_coordinator(client)
            try:
                await _warn_if_nobody_listens(client, coord, to)
                return await coord.request(source, to, body, timeout=wait, priority=level)
            except RequestError as exc:
                # A timeout, a handler's failure or a refused send: not a Redis problem,
                # which handle_errors would otherwise report a TimeoutError as.
                raise CliError(str(exc)) from None
            finally:
                await coord.aclose()

    reply = run_async(state, work)
    if as_json:
        print_json(reply.model_dump(mode="json"))
    else:
        print_json(reply.payload)
