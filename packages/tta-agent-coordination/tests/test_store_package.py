"""``tta_agent_coordination.store`` is a package of one module per job; its names stay put.

Every name the former ``store.py`` module exported is importable from the package, is the
object its own module defines, and imports without a warning.
"""

from __future__ import annotations

import subprocess
import sys

import tta_agent_coordination.store as store
from tta_agent_coordination.store import errors, events, interface, write_behind

FORMER_NAMES = {
    "AgentEvent": events,
    "AgentEventKind": events,
    "BatcherStats": write_behind,
    "Durability": write_behind,
    "LifecycleKind": events,
    "MessageEvent": events,
    "MessageStatus": events,
    "MessageStore": interface,
    "PendingMessage": events,
    "RestoreTarget": interface,
    "StoreError": errors,
    "StoreMetrics": interface,
    "StorePayloadError": errors,
    "StorePermissionError": errors,
    "StoreUnavailableError": errors,
    "StoreWriter": write_behind,
    "WriteBehindBatcher": write_behind,
}


def test_the_package_exports_exactly_the_former_names() -> None:
    assert sorted(store.__all__) == sorted(FORMER_NAMES)
    for name, module in FORMER_NAMES.items():
        assert getattr(store, name) is getattr(module, name)
        assert name in module.__all__


def test_importing_the_store_does_not_warn() -> None:
    code = "from tta_agent_coordination.store import *; import tta_agent_coordination.store"
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)
