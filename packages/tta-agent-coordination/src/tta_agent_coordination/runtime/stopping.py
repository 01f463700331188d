"""How a worker waits to be stopped: SIGINT/SIGTERM as stop requests, and waits on events."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

__all__ = ["install_stop_signals", "nothing_to_restore", "wait_any"]


def install_stop_signals(request_stop: Callable[[str], None]) -> Callable[[], None]:
    """Call ``request_stop(signal name)`` on SIGINT and SIGTERM; returns the undo.

    Signals are left alone where the running loop cannot handle them (not the main
    thread, or a platform without signal support).
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, request_stop, sig.name)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(sig)

    def restore() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return restore


def nothing_to_restore() -> None:
    """The undo of installing no signal handlers."""


async def wait_any(*events: asyncio.Event, timeout: float | None = None) -> None:  # noqa: ASYNC109
    """Wait until any of ``events`` is set, or ``timeout`` seconds pass."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, return_exceptions=True)
