"""A registry of named circuit breakers, for sharing them and looking at them together."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.resilience.breaker_state import CircuitState
from tta_agent_coordination.resilience.breaker_store import BreakerStore
from tta_agent_coordination.resilience.circuit_breaker import CircuitBreaker
from tta_agent_coordination.resilience.config import CircuitBreakerConfig

__all__ = ["CircuitBreakerRegistry"]


class CircuitBreakerRegistry:
    """Named breakers, created on first use.

    Args:
        store: the store given to every breaker the registry creates (each breaker
            gets its own in-process store when None).
        default_config: the config of breakers created without one.
        clock: the clock given to the breakers the registry creates.
    """

    def __init__(
        self,
        store: BreakerStore | None = None,
        *,
        default_config: CircuitBreakerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._default = default_config if default_config is not None else CircuitBreakerConfig()
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def get_or_create(
        self, name: str, config: CircuitBreakerConfig | None = None
    ) -> CircuitBreaker:
        """The breaker named ``name``, created with ``config`` if it does not exist.

        Raises:
            ConfigurationError: ``name`` exists with a different config (configs are
                never silently ignored; pass None to accept the existing one).
        """
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(
                name,
                config if config is not None else self._default,
                self._store,
                clock=self._clock,
            )
            self._breakers[name] = breaker
        elif config is not None and config != breaker.config:
            raise ConfigurationError(
                f"circuit breaker {name!r} already exists with a different config "
                f"({breaker.config!r}); pass config=None to use it, or remove() it first"
            )
        return breaker

    def register(self, breaker: CircuitBreaker) -> CircuitBreaker:
        """Add a breaker built elsewhere.

        Raises:
            ConfigurationError: another breaker with the same name is registered.
        """
        existing = self._breakers.get(breaker.name)
        if existing is not None and existing is not breaker:
            raise ConfigurationError(f"a circuit breaker named {breaker.name!r} is registered")
        self._breakers[breaker.name] = breaker
        return breaker

    def get(self, name: str) -> CircuitBreaker | None:
        """The breaker named ``name``, or None."""
        return self._breakers.get(name)

    def remove(self, name: str) -> CircuitBreaker | None:
        """Forget the breaker named ``name``; the removed breaker, or None."""
        return self._breakers.pop(name, None)

    def list_names(self) -> list[str]:
        """The names of the registered breakers, sorted."""
        return sorted(self._breakers)

    def states(self) -> dict[str, CircuitState]:
        """Each breaker's state (as last seen), by name."""
        return {name: self._breakers[name].state for name in self.list_names()}

    def open_breakers(self) -> list[str]:
        """The names of the breakers that are open, sorted."""
        return [n for n, s in self.states().items() if s is CircuitState.OPEN]

    def reset_all(self) -> None:
        """Reset every breaker (see :meth:`CircuitBreaker.reset`)."""
        for breaker in self._breakers.values():
            breaker.reset()

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __len__(self) -> int:
        return len(self._breakers)

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(list(self._breakers.values()))
