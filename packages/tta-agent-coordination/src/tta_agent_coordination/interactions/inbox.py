"""Asynchronous conversations: every agent's inbox (``messaging.async_conversation``).

An inbox is kept under ``{_inbox:<agent>}`` (``keys.py``): unread messages in arrival
order (all senders, and per sender), their bodies, and a capped arrival stream that
``wait_for_message`` blocks on through the coordinator's ``StreamWaiter`` (no polling).
Reading and marking read is one script, so concurrent readers of one inbox get disjoint
messages; the last arrival id is read in the same step, so a waiter never misses one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.interactions.codec import (
    decode_inbox_entry,
    dump_message,
    jsonable_payload,
    ms_to_datetime,
)
from tta_agent_coordination.interactions.errors import InboxFullError, NoHandlerError
from tta_agent_coordination.interactions.handlers import ConversationContext
from tta_agent_coordination.interactions.keys import pair_id
from tta_agent_coordination.interactions.lua import as_str
from tta_agent_coordination.interactions.models import ConversationMessage, MessageKind
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.resilience.cancellation import CancellationWatch

if TYPE_CHECKING:
    from tta_agent_coordination.interactions.messaging import AgentMessaging

__all__ = ["AsyncConversation"]

_MAX_LIMIT = 1000


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= _MAX_LIMIT:
        raise ConfigurationError(f"limit must be between 1 and {_MAX_LIMIT}, got {limit}")
    return limit


class AsyncConversation:
    """Send to an inbox, read it later (``messaging.async_conversation``)."""

    def __init__(self, messaging: AgentMessaging) -> None:
        self._m = messaging

    async def send(
        self,
        sender: AgentId,
        recipient: AgentId,
        payload: Any,
        *,
        message_id: str | None = None,
    ) -> ConversationMessage:
        """Put a message in ``recipient``'s inbox; returns it (timed on arrival).

        ``message_id`` makes a retried send safe: the same id arriving again within
        ``dedupe_window_s`` (or while still unread) is not added twice.

        Raises:
            InboxFullError: the inbox holds ``inbox_max_unread`` unread messages.
            AgentNotFoundError, CrossOrganizationError, PayloadError: as for every send.
        """
        await self._m.directory.check_route(sender, [recipient])
        body = jsonable_payload(payload, self._m.max_payload_bytes)
        message = ConversationMessage(
            message_id=message_id or uuid.uuid4().hex,
            kind=MessageKind.ASYNC,
            sender=sender,
            recipient=recipient,
            payload=body,
            conversation_id=pair_id(sender, recipient),
        )
        outcome, message = await self.append(message)
        if outcome == "full":
            raise InboxFullError(str(recipient), self._m.inbox_max_unread)
        if outcome == "ok":
            await self._m.record_message(message)
        return message

    async def append(self, message: ConversationMessage) -> tuple[str, ConversationMessage]:
        """Append ``message`` to its recipient's inbox, unchecked and unrecorded.

        Returns the outcome (``ok``, ``duplicate`` or ``full``) and the message timed on
        arrival. :meth:`send` checks and records around it; ``restore`` uses it alone.
        """
        recipient, sender = message.recipient, message.sender
        keys = self._m.keys.inbox(recipient)
        raw = await self._m.scripts.run(
            "inbox_append",
            [
                keys.unread,
                keys.from_sender(str(sender)),
                keys.body,
                keys.log,
                keys.seen,
                keys.meta,
            ],
            [
                message.message_id,
                str(sender),
                dump_message(message),
                self._m.inbox_max_unread,
                self._m.log_cap,
                self._m.retention_ms,
                self._m.dedupe_window_ms,
            ],
        )
        outcome = as_str(raw[0])
        return outcome, message.model_copy(update={"sent_at": ms_to_datetime(int(raw[2]))})

    async def _read(
        self, agent: AgentId, sender: AgentId | None, limit: int, mark: bool
    ) -> tuple[str, list[ConversationMessage]]:
        keys = self._m.keys.inbox(agent)
        index = keys.unread if sender is None else keys.from_sender(str(sender))
        raw = await self._m.scripts.run(
            "inbox_read",
            [keys.unread, keys.body, keys.log, index],
            [_check_limit(limit), "1" if mark else "0"],
        )
        last = as_str(raw[0])
        messages = [decode_inbox_entry(as_str(raw[i])) for i in range(2, len(raw), 2)]
        if mark and messages:
            await self._m.record_read(agent, [m.message_id for m in messages])
        return last, messages

    async def get_unread_messages(
        self, agent: AgentId, *, limit: int = 100, mark_read: bool = True
    ) -> list[ConversationMessage]:
        """The oldest ``limit`` unread messages of ``agent``'s inbox, oldest first.

        With ``mark_read`` (the default) they are marked read in the same atomic step,
        so two concurrent readers never get the same message.

        Raises:
            ConfigurationError: ``limit`` is not between 1 and 1000.
        """
        return (await self._read(agent, None, limit, mark_read))[1]

    async def get_messages_from_agent(
        self, agent: AgentId, other: AgentId, *, limit: int = 100, mark_read: bool = True
    ) -> list[ConversationMessage]:
        """The oldest ``limit`` unread messages from ``other`` in ``agent``'s inbox.

        Marked read as :meth:`get_unread_messages` does (unless ``mark_read=False``).

        Raises:
            ConfigurationError: ``limit`` is not between 1 and 1000.
        """
        return (await self._read(agent, other, limit, mark_read))[1]

    async def mark_read(self, agent: AgentId, message_ids: Sequence[str]) -> int:
        """Mark these messages of ``agent``'s inbox read; how many were unread."""
        if not message_ids:
            return 0
        keys = self._m.keys.inbox(agent)
        count = int(
            await self._m.scripts.run("inbox_mark", [keys.unread, keys.body], list(message_ids))
        )
        if count:
            await self._m.record_read(agent, list(message_ids))
        return count

    async def unread_count(self, agent: AgentId) -> int:
        """How many unread messages ``agent``'s inbox holds."""
        keys = self._m.keys.inbox(agent)
        return int(await self._m.redis.zcard(keys.unread))

    async def wait_for_message(
        self,
        agent: AgentId,
        from_agent: AgentId | None = None,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - the wait's deadline is its API
    ) -> ConversationMessage | None:
        """The oldest unread message (from ``from_agent``, or anyone), marked read.

        Waits up to ``timeout`` seconds for one to arrive.

        The wait is a blocking stream read shared with the coordinator's other waits
        (one connection per process, not one per waiter); no polling.

        Returns:
            The message, or None when none arrived in time.

        Raises:
            ConfigurationError: ``timeout`` is negative.
        """
        if timeout < 0:
            raise ConfigurationError(f"timeout must be >= 0 seconds, got {timeout}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        log = self._m.keys.inbox(agent).log
        # A cancellation swallowed inside the Redis client is raised before blocking.
        watch = CancellationWatch()
        while True:
            last, messages = await self._read(agent, from_agent, 1, True)
            if messages:
                return messages[0]
            watch.reraise()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            await self._m.coordinator.stream_waiter.wait({log: last}, remaining)

    async def resume_agent_handler(self, agent: AgentId, *, limit: int = 1000) -> int:
        """Run ``agent``'s handler (registered in this process) over its unread messages.

        Oldest first; each message is marked read after its handler returns, so a
        handler that fails leaves it (and the ones after it) unread for the next
        resume. Meant for an agent that was down while messages arrived.

        Returns:
            How many messages the handler processed.

        Raises:
            NoHandlerError: ``agent`` has no handler in this process.
            Exception: whatever the handler raised (the message stays unread).
        """
        fn = self._m.handlers.handler_of(agent)
        if fn is None:
            raise NoHandlerError(
                "resume_agent_handler", str(agent), 0, f"{agent} has no handler in this process"
            )
        done = 0
        while done < limit:
            _, batch = await self._read(agent, None, min(100, limit - done), False)
            if not batch:
                break
            for message in batch:
                await fn(ConversationContext(self._m, message))
                await self.mark_read(agent, [message.message_id])
                done += 1
        return done
