"""The library's error hierarchy, rooted at :class:`CoordinationError`.

Operational failures of a send are reported as results (``MessageResult``); invalid
arguments raise. Every error says what failed and, where there is one, what to do.
Errors caused by a caller's bad input also derive from :class:`ValueError`, so code that
already catches ``ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "AgentRegistryError",
    "CircuitBreakerOpenError",
    "ConfigurationError",
    "CoordinationError",
    "CoordinatorUnavailableError",
    "InvalidAgentIdError",
    "MessageCoordinatorError",
    "MessageValidationError",
    "PayloadTooLargeError",
]


class CoordinationError(Exception):
    """Base class of every error raised by tta-agent-coordination."""


class ConfigurationError(CoordinationError, ValueError):
    """A setting or argument of a component is out of range or inconsistent."""


class InvalidAgentIdError(CoordinationError, ValueError):
    """A string could not be parsed into an ``AgentId``, or holds a character unsafe in keys."""


class MessageCoordinatorError(CoordinationError):
    """Base class of errors raised by a message coordinator."""


class MessageValidationError(MessageCoordinatorError, ValueError):
    """A message was rejected before it reached Redis (mismatched address, unserialisable)."""


class PayloadTooLargeError(MessageValidationError):
    """A message's serialised envelope exceeds the coordinator's payload size limit."""

    def __init__(self, message_id: str, size: int, limit: int) -> None:
        self.message_id = message_id
        self.size = size
        self.limit = limit
        super().__init__(
            f"message {message_id!r} serialises to {size} bytes, over the limit of {limit} "
            "bytes; store large data elsewhere and send a reference, or raise "
            "max_payload_bytes"
        )


class CoordinatorUnavailableError(MessageCoordinatorError):
    """Redis could not be reached (or failed) while the coordinator was working.

    The operation may or may not have been applied: receive again, or settle with the
    same token, once Redis is back. Nothing accepted is lost; leases expire and recover.
    """


class AgentRegistryError(CoordinationError):
    """Base class of errors raised by an agent registry."""


class CircuitBreakerOpenError(CoordinationError):
    """A call was refused because its circuit breaker is open (or its probes are taken).

    ``retry_after`` is the number of seconds until the breaker half-opens, when known.
    """

    def __init__(self, name: str, retry_after: float | None = None) -> None:
        self.name = name
        self.retry_after = retry_after
        hint = f"; retry in {retry_after:.1f}s" if retry_after is not None else ""
        super().__init__(f"circuit breaker {name!r} is open{hint}")
