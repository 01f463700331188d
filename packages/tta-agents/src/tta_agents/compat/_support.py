"""What every compat module shares: the warning class and an awaitable that must be awaited."""

from __future__ import annotations

import warnings
from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["GUIDE", "CompatWarning", "MustAwait"]

T = TypeVar("T")

GUIDE = "docs/TTA_MIGRATION_GUIDE.md"
"""Where every behaviour change of the compat layer is documented."""


class CompatWarning(RuntimeWarning):
    """A call through :mod:`tta_agents.compat` that behaves differently from the original.

    Each one names the change and the section of ``docs/TTA_MIGRATION_GUIDE.md`` that
    describes it. Turn them into errors in a test suite with
    ``-W error::tta_agents.compat.CompatWarning``.
    """


class MustAwait(Coroutine[Any, Any, T]):
    """The coroutine of a call that was synchronous in the original API.

    The original ran ``register``/``deregister``/``stop_heartbeats`` as fire-and-forget
    tasks (their errors were lost and a register could resurrect a deregistered agent).
    Here they are coroutines: ``await registry.register(agent)``. One that is dropped
    without being awaited did nothing, and emits a :class:`CompatWarning` that says so
    (instead of Python's generic "never awaited").
    """

    def __init__(self, coro: Coroutine[Any, Any, T], call: str) -> None:
        self._coro = coro
        self._call = call
        self._started = False

    def __await__(self) -> Generator[Any, None, T]:
        self._started = True
        return self._coro.__await__()

    def send(self, value: Any, /) -> Any:
        """Advance the wrapped coroutine (the ``Coroutine`` protocol)."""
        self._started = True
        return self._coro.send(value)

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
        /,
    ) -> Any:
        """Raise into the wrapped coroutine (the ``Coroutine`` protocol)."""
        self._started = True
        if isinstance(typ, BaseException):
            return self._coro.throw(typ)
        exc = typ() if val is None else val
        if not isinstance(exc, BaseException):  # pragma: no cover - the protocol's odd form
            exc = typ(exc)
        return self._coro.throw(exc)

    def close(self) -> None:
        """Close the wrapped coroutine."""
        self._started = True
        self._coro.close()

    def __del__(self) -> None:
        if self._started:
            return
        # Close it ourselves: Python's own "never awaited" warning would not say why.
        self._coro.close()
        warnings.warn(
            f"{self._call} was never awaited, so it did nothing: in tta_agents.compat it is "
            f"a coroutine (the original ran it in the background). Write "
            f"'await {self._call}'. See {GUIDE}, 'Behaviour changes'.",
            CompatWarning,
            stacklevel=2,
        )
