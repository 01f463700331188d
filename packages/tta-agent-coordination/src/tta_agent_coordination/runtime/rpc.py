"""Deprecated: request/reply moved out of the runtime (the alias is removed in 0.3.0).

The transport-free helpers (``build_reply``, ``expects_reply``, ``raise_for_reply``,
``build_message``, ``reply_payload`` and the ``REPLY_*`` headers) are in
:mod:`tta_agent_coordination.replies`; ``ReplyRouter``, the reply inbox, is in
:mod:`tta_agent_coordination.redis.reply_router`. This module re-exports them and warns
once at import.
"""

from __future__ import annotations

import warnings

from tta_agent_coordination.redis.reply_router import ReplyRouter
from tta_agent_coordination.replies import (
    REPLY_INBOX_HEADER,
    REPLY_STATUS_HEADER,
    REPLY_TTL_HEADER,
    build_message,
    build_reply,
    expects_reply,
    raise_for_reply,
    reply_payload,
)

__all__ = [
    "REPLY_INBOX_HEADER",
    "REPLY_STATUS_HEADER",
    "REPLY_TTL_HEADER",
    "ReplyRouter",
    "build_message",
    "build_reply",
    "expects_reply",
    "raise_for_reply",
    "reply_payload",
]

warnings.warn(
    "tta_agent_coordination.runtime.rpc is deprecated; import from "
    "tta_agent_coordination.replies (ReplyRouter: tta_agent_coordination.redis.reply_router) "
    "(the alias is removed in 0.3.0)",
    DeprecationWarning,
    stacklevel=2,
)
