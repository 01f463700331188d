"""Deprecated: import from :mod:`tta_agent_coordination.redis.agent_registry.codec`.

``decode_records`` is in :mod:`tta_agent_coordination.redis.agent_registry.reads` now.
This alias is removed in 0.3.0.
"""

import warnings

from tta_agent_coordination.redis.agent_registry.codec import (
    capabilities_of,
    decode_events,
    dump_json,
    ms_to_datetime,
    normalise_capabilities,
    normalise_status,
    snapshot_parts,
)
from tta_agent_coordination.redis.agent_registry.reads import decode_records

__all__ = [
    "capabilities_of",
    "decode_events",
    "decode_records",
    "dump_json",
    "ms_to_datetime",
    "normalise_capabilities",
    "normalise_status",
    "snapshot_parts",
]

warnings.warn(
    "tta_agent_coordination.redis.registry_codec is deprecated; import from "
    "tta_agent_coordination.redis.agent_registry.codec (the alias is removed in 0.3.0)",
    DeprecationWarning,
    stacklevel=2,
)
