"""A guard that adds no protection: each call runs once, errors propagate unchanged."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["PassthroughGuard"]

T = TypeVar("T")


class PassthroughGuard:
    """Implements ``CallGuard`` by calling through; use it to turn resilience off."""

    async def run(
        self, operation: str, fn: Callable[[], Awaitable[T]], *, retry: bool = False
    ) -> T:
        """Await ``fn()`` once."""
        return await fn()
