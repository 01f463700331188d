"""Who may change things through the dashboard: the holder of its token.

Reading needs no token; the dashboard binds the loopback by default. Every write (replay,
purge) is a POST that carries the token in its form (``token``) or an
``Authorization: Bearer`` header. Because the token travels in the request itself, not in
a cookie, another site cannot make a visitor's browser perform a write (no CSRF). Without
a configured token the dashboard is read-only: every write is refused.
"""

from __future__ import annotations

import hmac
from enum import Enum

__all__ = ["TokenCheck", "check_token"]


class TokenCheck(Enum):
    """The outcome of checking a write's token."""

    ALLOWED = "allowed"
    READ_ONLY = "read-only"
    """No token is configured: nothing may be written."""
    MISSING = "missing"
    WRONG = "wrong"


def check_token(configured: str | None, given: str | None) -> TokenCheck:
    """Whether a write carrying ``given`` may run when the dashboard has ``configured``.

    Compared in constant time, so the response time tells nothing about the token.
    """
    if not configured:
        return TokenCheck.READ_ONLY
    if not given:
        return TokenCheck.MISSING
    if hmac.compare_digest(configured.encode(), given.encode()):
        return TokenCheck.ALLOWED
    return TokenCheck.WRONG
