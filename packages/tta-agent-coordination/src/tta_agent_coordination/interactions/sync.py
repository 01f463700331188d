"""Synchronous conversations: ``send_and_wait``, ``reply``, ``end_conversation``.

State of a pair lives in ``{_conv:<cid>}`` (``keys.py``); each change is one script.
A wait is a correlation id in the pair's state plus this process's reply inbox (the
coordinator's ``expect_reply``): the answer, or the end of the conversation, is pushed
into that inbox from whichever process gives it, so nothing polls. See
docs/conversations.md.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tta_agent_coordination.errors import ConfigurationError, RequestTimeoutError
from tta_agent_coordination.interactions.codec import (
    ENVELOPE_KIND,
    dump_message,
    jsonable_payload,
    load_message,
)
from tta_agent_coordination.interactions.errors import (
    ConversationBusyError,
    ConversationEndedError,
    ConversationTimeoutError,
    MessageNotDeliveredError,
    NoHandlerError,
)
from tta_agent_coordination.interactions.keys import pair_id
from tta_agent_coordination.interactions.lua import as_str
from tta_agent_coordination.interactions.models import ConversationMessage, MessageKind
from tta_agent_coordination.models import AgentId, AgentMessage, MessageType, SendStatus
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.replies import ReplyAddress
from tta_agent_coordination.resilience.cancellation import CancellationWatch

if TYPE_CHECKING:
    from tta_agent_coordination.interactions.messaging import AgentMessaging

__all__ = ["CONV_STATUS_HEADER", "SyncConversation"]

CONV_STATUS_HEADER = "tta-conv-status"
"""Header of an answer pushed into a waiter's inbox: ``answer`` or ``ended``."""

_LATE_ANSWER_S = 5.0
"""How long a wait that timed out, but was answered in the same instant, waits for the
answer already on its way."""


def _pair(a: AgentId, b: AgentId) -> tuple[str, str, str]:
    """The conversation id, and the sorted pair."""
    if str(a) == str(b):
        raise ConfigurationError(f"{a} cannot hold a conversation with itself")
    first, second = sorted((str(a), str(b)))
    return pair_id(a, b), first, second


def _side(agent: AgentId, first: str) -> str:
    return "a" if str(agent) == first else "b"


class SyncConversation:
    """One agent asks, the other answers, the asker waits (``messaging.sync_conversation``)."""

    def __init__(self, messaging: AgentMessaging) -> None:
        self._m = messaging
        self._log = get_logger(__name__)

    async def send_and_wait(
        self,
        sender: AgentId,
        recipient: AgentId,
        payload: Any,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - the wait's deadline is its API
    ) -> ConversationMessage:
        """Send ``payload`` to ``recipient`` and wait for its answer.

        When ``recipient`` itself waits in ``send_and_wait`` for ``sender``, this message
        is its answer (ping-pong); otherwise it goes to the recipient's handler, in
        whichever process serves it. The message expires unhandled with the timeout.

        Returns:
            The answer (``ctx.reply``, a handler's return value, ``reply`` or the
            recipient's own ``send_and_wait``).

        Raises:
            ConversationBusyError: ``sender`` already waits for ``recipient``.
            ConversationEndedError: the conversation was ended while waiting.
            NoHandlerError: no handler took the message within ``timeout``.
            ConversationTimeoutError: a handler took it but no answer came in time.
            MessageNotDeliveredError: the recipient's queue refused the message.
            AgentNotFoundError, CrossOrganizationError, PayloadError: see the directory
                and payload rules.
            ConfigurationError: ``timeout`` is not positive, or ``sender == recipient``.
        """
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout}")
        # A cancellation can be swallowed inside the Redis client (Python 3.11's
        # wait_for race): the watch notices it and raises it before the wait.
        watch = CancellationWatch()
        cid, first, second = _pair(sender, recipient)
        await self._m.directory.check_route(sender, [recipient])
        body = jsonable_payload(payload, self._m.max_payload_bytes)
        side = _side(sender, first)
        corr = uuid.uuid4().hex
        message = ConversationMessage(
            message_id=uuid.uuid4().hex,
            kind=MessageKind.SYNC,
            sender=sender,
            recipient=recipient,
            payload=body,
            conversation_id=cid,
        )
        coordinator = self._m.coordinator
        keys = self._m.keys.conversation(cid)
        pending = coordinator.expect_reply(corr, recipient)
        try:
            raw = await self._m.scripts.run(
                "conv_send",
                [keys.state, keys.log],
                [
                    first,
                    second,
                    side,
                    corr,
                    coordinator.reply_inbox.model_dump_json(),
                    dump_message(message),
                    self._m.retention_ms,
                    self._m.log_cap,
                    int((timeout + _LATE_ANSWER_S) * 1000),
                ],
            )
            outcome, epoch, other_corr, other_addr = (as_str(x) for x in raw)
            if outcome == "busy":
                raise ConversationBusyError(str(sender), str(recipient))
            message = message.model_copy(update={"conversation_id": f"{cid}-{epoch}"})
            await self._m.record_conversation(message.conversation_id, first, second, "open")
            await self._m.record_message(message)
            if outcome == "answered":
                await self._push(other_addr, other_corr, message, ended=False)
            else:
                await self._enqueue(message, side, corr, timeout, keys.state)
            watch.reraise()
            return await self._await_answer(pending, message, side, corr, timeout, keys.state)
        except asyncio.CancelledError:
            # The caller gave up: end this side's wait so that the pair is not busy.
            await asyncio.shield(self._cancel(keys.state, side, corr))
            raise
        finally:
            pending.close()

    async def _enqueue(
        self, message: ConversationMessage, side: str, corr: str, ttl_s: float, state: str
    ) -> None:
        envelope = {
            "kind": ENVELOPE_KIND,
            "message": message.model_dump(mode="json"),
            "side": side,
            "corr": corr,
        }
        queued = AgentMessage(
            message_id=message.message_id,
            sender=message.sender,
            recipient=message.recipient,
            message_type=MessageType.EVENT,
            payload=envelope,
            correlation_id=corr,
            expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s),
        )
        result = await self._m.coordinator.send_message(message.sender, message.recipient, queued)
        if not result.delivered and result.status is not SendStatus.UNKNOWN:
            await self._cancel(state, side, corr)
            raise MessageNotDeliveredError(str(message.recipient), result.error or "refused")

    async def _await_answer(
        self,
        pending: Any,
        message: ConversationMessage,
        side: str,
        corr: str,
        wait_s: float,
        state: str,
    ) -> ConversationMessage:
        try:
            reply: AgentMessage = await pending.wait(wait_s)
        except RequestTimeoutError:
            cleared, picked = await self._cancel(state, side, corr)
            if cleared:
                error = ConversationTimeoutError if picked else NoHandlerError
                raise error(str(message.sender), str(message.recipient), wait_s) from None
            # Answered (or ended) in the same instant: the push is on its way.
            try:
                reply = await pending.wait(_LATE_ANSWER_S)
            except RequestTimeoutError:
                raise ConversationTimeoutError(
                    str(message.sender), str(message.recipient), wait_s
                ) from None
        answer = load_message(reply.payload.get("message", {}))
        if reply.headers.get(CONV_STATUS_HEADER) == "ended":
            raise ConversationEndedError(message.conversation_id, str(answer.sender))
        return answer

    async def _cancel(self, state: str, side: str, corr: str) -> tuple[bool, bool]:
        raw = await self._m.scripts.run("conv_cancel", [state], [side, corr])
        if int(raw[0]) != 1:
            return False, False
        return True, as_str(raw[1]) == "1"

    async def _push(
        self, address: str, corr: str, message: ConversationMessage, *, ended: bool
    ) -> None:
        reply = AgentMessage(
            sender=message.sender,
            recipient=message.recipient,
            message_type=MessageType.RESPONSE,
            correlation_id=corr,
            payload={"message": message.model_dump(mode="json")},
            headers={CONV_STATUS_HEADER: "ended" if ended else "answer"},
        )
        await self._m.coordinator.deliver_reply(ReplyAddress.model_validate_json(address), reply)

    async def pick(self, message: ConversationMessage, side: str, corr: str) -> bool:
        """Mark a wait's message taken by a handler; False when the wait is over."""
        keys = self._m.keys.conversation(message.conversation_id.rsplit("-", 1)[0])
        return int(await self._m.scripts.run("conv_pick", [keys.state], [side, corr])) == 1

    async def reply(self, responder: AgentId, requester: AgentId, payload: Any) -> bool:
        """Answer ``requester``'s wait in ``send_and_wait`` (from anywhere, any process).

        Returns:
            True when the answer ended the wait; False (nothing sent) when
            ``requester`` does not wait for ``responder`` (never did, timed out, was
            answered, or the conversation ended).

        Raises:
            AgentNotFoundError, CrossOrganizationError, PayloadError: as for sends.
        """
        return await self.answer(responder, requester, payload, corr="")

    async def answer(
        self, responder: AgentId, requester: AgentId, payload: Any, *, corr: str
    ) -> bool:
        """:meth:`reply`, to the wait ``corr`` only (``""``: whichever wait stands).

        An answer to a given wait (a handler's) skips the directory check: the asker was
        allowed to address the responder, and answering it is always allowed (also
        across organizations whose ``accepts_from`` only lets the asker's side in).
        """
        cid, first, _ = _pair(responder, requester)
        if not corr:
            await self._m.directory.check_route(responder, [requester])
        body = jsonable_payload(payload, self._m.max_payload_bytes)
        keys = self._m.keys.conversation(cid)
        message = ConversationMessage(
            message_id=uuid.uuid4().hex,
            kind=MessageKind.REPLY,
            sender=responder,
            recipient=requester,
            payload=body,
            conversation_id=cid,
        )
        raw = await self._m.scripts.run(
            "conv_reply",
            [keys.state, keys.log],
            [
                _side(responder, first),
                corr,
                dump_message(message),
                self._m.retention_ms,
                self._m.log_cap,
            ],
        )
        if int(raw[0]) != 1:
            return False
        wait_corr, address, epoch = as_str(raw[1]), as_str(raw[2]), as_str(raw[3])
        message = message.model_copy(update={"conversation_id": f"{cid}-{epoch}"})
        await self._m.record_message(message)
        await self._push(address, wait_corr, message, ended=False)
        return True

    async def end_conversation(self, agent_a: AgentId, agent_b: AgentId) -> bool:
        """End the pair's conversation.

        A side waiting in ``send_and_wait`` raises ``ConversationEndedError`` at once.
        The pair can talk again later (a new epoch).

        Returns:
            True when a conversation was open, False otherwise.
        """
        cid, first, second = _pair(agent_a, agent_b)
        keys = self._m.keys.conversation(cid)
        marker = ConversationMessage(
            message_id=uuid.uuid4().hex,
            kind=MessageKind.ENDED,
            sender=agent_a,
            recipient=agent_b,
            conversation_id=cid,
        )
        raw = await self._m.scripts.run(
            "conv_end",
            [keys.state, keys.log],
            [str(agent_a), dump_message(marker), self._m.ended_retention_ms, self._m.log_cap],
        )
        if int(raw[0]) != 1:
            return False
        epoch = as_str(raw[1])
        marker = marker.model_copy(update={"conversation_id": f"{cid}-{epoch}"})
        for corr, address in ((raw[2], raw[3]), (raw[4], raw[5])):
            if as_str(corr):
                await self._push(as_str(address), as_str(corr), marker, ended=True)
        await self._m.record_message(marker)
        await self._m.record_conversation(marker.conversation_id, first, second, "ended")
        return True
