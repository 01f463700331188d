"""Turning replies and request errors into :class:`StepResult`, one way for both paths.

``execute_legacy`` gets a reply (or an exception) from ``coordinator.request``; a run's
driver gets the same reply as a ``RESPONSE`` message in its queue. Both go through here,
so a single-shot run's result equals ``execute_legacy``'s for the same reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from tta_agent_coordination.errors import (
    RemoteHandlerError,
    RequestNotDeliveredError,
    RequestTimeoutError,
)
from tta_agent_coordination.models import AgentMessage
from tta_agent_coordination.plans.models import StepError, StepResult
from tta_agent_coordination.replies import REPLY_STATUS_HEADER

__all__ = ["from_error", "from_reply", "timeout_error"]


def timeout_error(timeout_s: float) -> StepResult:
    """The result of an attempt that got no reply within ``timeout_s`` seconds."""
    return StepResult(
        ok=False,
        error=StepError(
            kind="timeout", type="RequestTimeoutError", message=f"no reply within {timeout_s:g} s"
        ),
    )


def from_reply(reply: AgentMessage) -> StepResult:
    """A ``RESPONSE`` message as a result: its payload, or the handler's error."""
    if reply.headers.get(REPLY_STATUS_HEADER) != "error":
        return StepResult(ok=True, output=dict(reply.payload))
    raw = reply.payload.get("error")
    details: dict[str, Any] = (
        {str(k): v for k, v in cast(Mapping[Any, Any], raw).items()}
        if isinstance(raw, Mapping)
        else {}
    )
    return StepResult(
        ok=False,
        error=StepError(
            kind=str(details.get("failure", "permanent")),
            type=str(details.get("type", "Error")),
            message=str(details.get("message", "")),
        ),
    )


def from_error(
    exc: RemoteHandlerError | RequestTimeoutError | RequestNotDeliveredError,
) -> StepResult:
    """A request's failure as a result (the same as :func:`from_reply` of its error reply)."""
    if isinstance(exc, RemoteHandlerError):
        error = StepError(kind=exc.failure, type=exc.error_type, message=exc.remote_message)
        return StepResult(ok=False, error=error)
    if isinstance(exc, RequestTimeoutError):
        return timeout_error(exc.timeout)
    return StepResult(
        ok=False,
        error=StepError(kind="not_delivered", type=type(exc).__name__, message=str(exc.reason)),
    )
