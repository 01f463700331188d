"""Running an agent's handler: one ``AgentWorker`` per registered agent.

``@messaging.register_handler(agent)`` runs the handler in the process that registered
it, fed by the agent's coordinator queue, so any number of processes may serve one
agent (they compete for its messages) and a message whose process dies is redelivered
to another once its lease runs out (``handler_visibility_timeout``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from tta_agent_coordination.errors import ConfigurationError, PermanentError
from tta_agent_coordination.interactions.codec import ENVELOPE_KIND, load_message
from tta_agent_coordination.interactions.models import ConversationMessage, MessageKind
from tta_agent_coordination.interfaces import AgentRegistry
from tta_agent_coordination.models import AgentId, MessageType
from tta_agent_coordination.observability.logging import get_logger
from tta_agent_coordination.runtime.context import MessageContext
from tta_agent_coordination.runtime.worker import AgentWorker

if TYPE_CHECKING:
    from tta_agent_coordination.interactions.messaging import AgentMessaging

__all__ = ["ConversationContext", "ConversationHandler", "HandlerHost"]


class ConversationContext:
    """What a conversation handler gets: the message and a way to answer it.

    Attributes:
        message: the message being handled.
        attempts: how many times it was delivered (more than 1 after a crash).
    """

    __slots__ = ("_corr", "_messaging", "_side", "attempts", "message", "replied")

    def __init__(
        self,
        messaging: AgentMessaging,
        message: ConversationMessage,
        *,
        attempts: int = 1,
        side: str = "",
        corr: str = "",
    ) -> None:
        self._messaging = messaging
        self._side = side
        self._corr = corr
        self.message = message
        self.attempts = attempts
        self.replied = False
        """True once :meth:`reply` answered (the return value is then not sent)."""

    @property
    def sender(self) -> AgentId:
        """Who sent the message."""
        return self.message.sender

    @property
    def recipient(self) -> AgentId:
        """The agent this handler runs as."""
        return self.message.recipient

    @property
    def conversation_id(self) -> str:
        """The message's conversation id."""
        return self.message.conversation_id

    @property
    def payload(self) -> Any:
        """The message's payload."""
        return self.message.payload

    async def reply(self, payload: Any) -> bool:
        """Answer the sender, in the kind the message came in.

        A ``send_and_wait`` message is answered in its wait (False when that wait is
        over: answered, timed out or ended); a one-way message gets a one-way message
        back, an inbox message an inbox message (True once sent).

        Raises:
            PayloadError: the payload is not JSON or too big.
        """
        m = self._messaging
        if self.message.kind is MessageKind.SYNC:
            ok = await m.sync_conversation.answer(
                self.recipient, self.sender, payload, corr=self._corr
            )
        elif self.message.kind is MessageKind.ASYNC:
            await m.async_conversation.send(self.recipient, self.sender, payload)
            ok = True
        else:
            results = await m.one_way.send(self.recipient, self.sender, payload)
            ok = all(r.delivered for r in results)
        self.replied = self.replied or ok
        return ok


ConversationHandler = Callable[[ConversationContext], Awaitable[Any]]
"""``async def handler(ctx: ConversationContext) -> Any``: a returned value (not None)
answers a ``send_and_wait`` that the handler did not answer with ``ctx.reply``."""


class HandlerHost:
    """The handlers registered in this process, each served by its own worker."""

    def __init__(
        self,
        messaging: AgentMessaging,
        registry: AgentRegistry | None,
        *,
        visibility_timeout: float,
        concurrency: int,
    ) -> None:
        self._messaging = messaging
        self._registry = registry
        self._visibility = visibility_timeout
        self._concurrency = concurrency
        self._handlers: dict[str, ConversationHandler] = {}
        self._workers: dict[str, AgentWorker] = {}
        self._running = False
        self._log = get_logger(__name__)

    def handler_of(self, agent: AgentId) -> ConversationHandler | None:
        """The handler registered for ``agent`` in this process, if any."""
        return self._handlers.get(str(agent))

    def agents(self) -> list[AgentId]:
        """The agents with a handler in this process."""
        return [AgentId.parse(a) for a in sorted(self._handlers)]

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    def add_nowait(self, agent: AgentId, fn: ConversationHandler) -> None:
        """Register ``fn`` for ``agent`` before the host starts.

        Raises:
            ConfigurationError: ``agent`` already has a handler here, or ``fn`` is not
                callable.
        """
        if not callable(fn):
            raise ConfigurationError(f"a handler must be an async function, got {fn!r}")
        if str(agent) in self._handlers:
            raise ConfigurationError(f"{agent} already has a handler in this process")
        self._handlers[str(agent)] = fn

    async def add(self, agent: AgentId, fn: ConversationHandler) -> None:
        """Register ``fn`` for ``agent`` (starting its worker if the host runs).

        Raises:
            ConfigurationError: ``agent`` already has a handler here, or ``fn`` is not
                callable.
        """
        self.add_nowait(agent, fn)
        if self._running:
            await self._start(agent)

    async def start(self) -> None:
        """Start a worker for every registered handler."""
        self._running = True
        for name in list(self._handlers):
            if name not in self._workers:
                await self._start(AgentId.parse(name))

    async def stop(self, grace_period: float | None = None) -> None:
        """Stop every worker (in-flight handlers get ``grace_period`` seconds)."""
        self._running = False
        workers = list(self._workers.values())
        self._workers.clear()
        for worker in workers:
            await worker.stop(grace_period=grace_period)

    async def _start(self, agent: AgentId) -> None:
        worker = AgentWorker(
            self._messaging.coordinator,
            self._registry,
            agent,
            concurrency=self._concurrency,
            visibility_timeout=self._visibility,
            metadata={"interactions": True},
        )

        async def run(ctx: MessageContext[Any]) -> None:
            await self.dispatch(agent, ctx)

        worker.add_handler(run, MessageType.EVENT, kind=ENVELOPE_KIND)
        self._workers[str(agent)] = worker
        await worker.start()

    async def dispatch(self, agent: AgentId, ctx: MessageContext[Any]) -> None:
        """Run ``agent``'s handler on one queue delivery (the worker settles it).

        A ``send_and_wait`` message whose wait is over (answered, timed out, ended) is
        skipped: nobody would get the answer.

        Raises:
            PermanentError: the delivery is not a conversation message (dead-lettered).
        """
        fn = self._handlers.get(str(agent))
        if fn is None:  # unregistered while the worker stopped
            raise PermanentError(f"no conversation handler for {agent}")
        envelope = ctx.message.payload
        raw = envelope.get("message")
        if not isinstance(raw, dict):
            raise PermanentError("a conversation delivery without a message")
        message = load_message(cast(dict[str, Any], raw))
        side = str(envelope.get("side", ""))
        corr = str(envelope.get("corr", ""))
        sync = self._messaging.sync_conversation
        if message.kind is MessageKind.SYNC and not await sync.pick(message, side, corr):
            self._log.info(
                "conversation_message_skipped",
                message_id=message.message_id,
                reason="the wait is over",
            )
            return
        context = ConversationContext(
            self._messaging, message, attempts=ctx.attempts, side=side, corr=corr
        )
        result = await fn(context)
        if message.kind is MessageKind.SYNC and not context.replied and result is not None:
            await sync.answer(message.recipient, message.sender, result, corr=corr)
