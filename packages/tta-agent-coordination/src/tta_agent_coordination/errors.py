"""The library's error hierarchy, rooted at :class:`CoordinationError`.

Operational failures of a send are reported as results (``MessageResult``); invalid
arguments raise. Every error says what failed and, where there is one, what to do.
Errors caused by a caller's bad input also derive from :class:`ValueError`, so code that
already catches ``ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "AgentAlreadyRegisteredError",
    "AgentRegistryError",
    "CircuitBreakerOpenError",
    "ConfigurationError",
    "CoordinationError",
    "CoordinatorUnavailableError",
    "InvalidAgentIdError",
    "MessageCoordinatorError",
    "MessageValidationError",
    "NonFiniteNumberError",
    "PayloadTooDeepError",
    "PayloadTooLargeError",
    "PermanentError",
    "RegistrationExpiredError",
    "RegistrationValidationError",
    "RegistryUnavailableError",
    "RemoteHandlerError",
    "RequestError",
    "RequestNotDeliveredError",
    "RequestTimeoutError",
    "StaleRegistrationError",
    "WorkerError",
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


class PayloadTooDeepError(MessageValidationError):
    """A message's payload nests deeper than a receiver can decode (``MAX_PAYLOAD_DEPTH``)."""

    def __init__(self, message_id: str, limit: int) -> None:
        self.message_id = message_id
        self.limit = limit
        super().__init__(
            f"message {message_id!r} has a payload nested more than {limit} levels deep "
            "(dicts and lists); receivers cannot decode it: flatten the payload"
        )


class NonFiniteNumberError(MessageValidationError):
    """A message's payload holds NaN or an infinity, which JSON cannot carry.

    ``path`` locates the value (``payload.scores[2]``).
    """

    def __init__(self, message_id: str, path: str, value: float) -> None:
        self.message_id = message_id
        self.path = path
        self.value = value
        super().__init__(
            f"message {message_id!r} holds {value!r} at {path}; JSON has no NaN or "
            "infinity (it would arrive as null): send None or a string instead"
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


class AgentAlreadyRegisteredError(AgentRegistryError):
    """An agent id is held by a live registration of another owner (another process).

    Deregister it there, wait until its liveness expires, or register with
    ``takeover=True`` to replace it on purpose.
    """

    def __init__(self, agent_id: str, expires_in_s: float | None = None) -> None:
        self.agent_id = agent_id
        self.expires_in_s = expires_in_s
        hint = f" (its liveness expires in {expires_in_s:.1f}s)" if expires_in_s is not None else ""
        super().__init__(
            f"agent {agent_id} is already registered by a live owner{hint}; deregister it "
            "there, wait for it to expire, or pass takeover=True"
        )


class StaleRegistrationError(AgentRegistryError):
    """A heartbeat, status change or deregistration came from an owner that no longer holds the id.

    ``reason`` is ``"replaced"`` (another owner registered the id), ``"deregistered"``
    (the registration was removed), ``"expired"`` (its liveness ran out) or
    ``"not_registered"`` (this registry never registered the id). Register again to
    hold the id.
    """

    def __init__(self, agent_id: str, reason: str) -> None:
        self.agent_id = agent_id
        self.reason = reason
        super().__init__(
            f"registration of agent {agent_id} is stale ({reason}): this owner no longer "
            "holds it; register again to take part"
        )


class RegistrationExpiredError(StaleRegistrationError):
    """A registration's liveness expired before its heartbeat: the agent must register again."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id, "expired")


class RegistrationValidationError(AgentRegistryError, ValueError):
    """A registration was rejected before it reached Redis (bad capability, name, metadata)."""


class RegistryUnavailableError(AgentRegistryError):
    """Redis could not be reached (or failed) while the registry was working.

    The operation may or may not have been applied; it is safe to repeat.
    """


class PermanentError(CoordinationError):
    """Raised by a handler to fail its message for good: dead-lettered, never retried.

    Any other exception from a handler is transient and the message is retried with
    backoff. A request's requester receives the error as a :class:`RemoteHandlerError`.
    """


class WorkerError(CoordinationError):
    """An ``AgentWorker`` was used in a way its state does not allow (started twice, ...)."""


class RequestError(MessageCoordinatorError):
    """Base class of the errors of a request/reply exchange."""


class RequestTimeoutError(RequestError, TimeoutError):
    """No reply arrived within the request's timeout.

    The request may still be handled later (its reply is then dropped); a request that
    nobody received in time is dead-lettered with failure ``timeout`` when it expires.
    """

    def __init__(self, recipient: str, correlation_id: str, timeout: float) -> None:
        self.recipient = recipient
        self.correlation_id = correlation_id
        self.timeout = timeout
        super().__init__(
            f"request {correlation_id!r} to {recipient} got no reply within {timeout:g}s; "
            "check that a worker for that agent is running (tta-coord agents), or raise "
            "the timeout"
        )


class RequestNotDeliveredError(RequestError):
    """The request could not be enqueued (the recipient's queue is full, Redis is down)."""

    def __init__(self, recipient: str, correlation_id: str, reason: str | None) -> None:
        self.recipient = recipient
        self.correlation_id = correlation_id
        self.reason = reason
        super().__init__(f"request {correlation_id!r} to {recipient} was not delivered: {reason}")


class RemoteHandlerError(RequestError):
    """The recipient's handler failed the request for good; the requester gets this.

    ``error_type`` is the class name of the handler's exception, ``remote_message`` its
    text and ``failure`` the failure type (``permanent``, or ``transient``/``timeout``
    when retries ran out).
    """

    def __init__(self, recipient: str, error_type: str, remote_message: str, failure: str) -> None:
        self.recipient = recipient
        self.error_type = error_type
        self.remote_message = remote_message
        self.failure = failure
        super().__init__(
            f"{recipient} failed the request ({failure}): {error_type}: {remote_message}"
        )
