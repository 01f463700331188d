"""One-way messages: sent to the recipients' handlers, no answer (``messaging.one_way``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tta_agent_coordination.interactions.codec import ENVELOPE_KIND, jsonable_payload
from tta_agent_coordination.interactions.keys import pair_id
from tta_agent_coordination.interactions.models import ConversationMessage, MessageKind
from tta_agent_coordination.models import AgentId, AgentMessage, MessageResult, MessageType

if TYPE_CHECKING:
    from tta_agent_coordination.interactions.messaging import AgentMessaging

__all__ = ["OneWayMessenger"]


class OneWayMessenger:
    """Fire-and-forget messages to one or many agents."""

    def __init__(self, messaging: AgentMessaging) -> None:
        self._m = messaging

    async def send(
        self,
        sender: AgentId,
        recipients: AgentId | Sequence[AgentId],
        payload: Any,
    ) -> list[MessageResult]:
        """Send ``payload`` to each recipient's handler (in whichever process serves it).

        The messages wait in the recipients' coordinator queues until a handler takes
        them, with the queues' at-least-once delivery (a handler that fails is retried,
        then the message is dead-lettered).

        Returns:
            One result per recipient, in order (``delivered`` False when its queue
            refused the message).

        Raises:
            AgentNotFoundError, CrossOrganizationError, PayloadError: checked for every
                recipient before anything is sent.
        """
        targets = [recipients] if isinstance(recipients, AgentId) else list(recipients)
        if not targets:
            return []
        await self._m.directory.check_route(sender, targets)
        body = jsonable_payload(payload, self._m.max_payload_bytes)
        batch: list[AgentMessage] = []
        messages: list[ConversationMessage] = []
        for recipient in targets:
            message = ConversationMessage(
                message_id=uuid.uuid4().hex,
                kind=MessageKind.ONE_WAY,
                sender=sender,
                recipient=recipient,
                payload=body,
                conversation_id=pair_id(sender, recipient),
            )
            messages.append(message)
            batch.append(
                AgentMessage(
                    message_id=message.message_id,
                    sender=sender,
                    recipient=recipient,
                    message_type=MessageType.EVENT,
                    payload={"kind": ENVELOPE_KIND, "message": message.model_dump(mode="json")},
                )
            )
        results = await self._m.coordinator.send_many(batch)
        for message, result in zip(messages, results, strict=True):
            if result.delivered:
                await self._m.record_message(message)
        return results
