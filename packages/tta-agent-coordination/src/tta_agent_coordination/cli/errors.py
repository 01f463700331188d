"""Turning user mistakes and outages into one-line messages and exit codes.

``tta-coord`` never shows a traceback for something the user can fix: a bad URL, an
unreachable server, a malformed agent id. Exit codes: 0 success, 1 a runtime failure (the
server is unreachable, a check failed), 2 a usage error (bad option or argument), 130
interrupted. A traceback still appears for a bug in ``tta-coord`` itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from contextlib import contextmanager

import redis.exceptions as redis_errors
import typer

from tta_agent_coordination.errors import (
    AgentRegistryError,
    CircuitBreakerOpenError,
    ConfigurationError,
    CoordinationError,
    CoordinatorUnavailableError,
    InvalidAgentIdError,
    RegistryUnavailableError,
)
from tta_agent_coordination.store import StoreError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "CliError",
    "CliUsageError",
    "fail",
    "handle_errors",
    "not_redis",
    "warn",
]

EXIT_FAILURE = 1
"""Exit code of a runtime failure: the server is unreachable, a check failed."""

EXIT_USAGE = 2
"""Exit code of a usage error: a bad option, argument or setting (as click uses)."""

EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells report it."""


class CliError(Exception):
    """A failure to report as one line on stderr; ``exit_code`` 1 unless said otherwise."""

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class CliUsageError(CliError):
    """A mistake in the command line or settings (exit code 2)."""

    exit_code = EXIT_USAGE


def warn(message: str) -> None:
    """Write ``Warning: message`` to stderr."""
    typer.echo(f"Warning: {message}", err=True)


def fail(message: str, exit_code: int = EXIT_FAILURE) -> typer.Exit:
    """Write ``Error: message`` to stderr; returns the ``typer.Exit`` to raise."""
    typer.echo(f"Error: {_one_line(message)}", err=True)
    return typer.Exit(exit_code)


def _one_line(message: str) -> str:
    return " ".join(message.split())


def not_redis(server: str | None, exc: BaseException) -> str:
    """The message for a server that answered, but not in the Redis protocol (an HTTP port)."""
    where = f"the server at {server}" if server else "the server"
    return (
        f"{where} does not speak the Redis protocol ({exc}): is --redis-url "
        "(TTA_COORD_REDIS_URL) pointing at an HTTP or other non-Redis port? Redis listens "
        "on 6379 unless configured otherwise"
    )


def _protocol_error(exc: BaseException) -> redis_errors.InvalidResponse | None:
    """The ``InvalidResponse`` behind ``exc`` (itself, or a cause a guard wrapped), if any."""
    seen: BaseException | None = exc
    for _ in range(5):  # a short chain: guard -> retry -> redis-py
        if seen is None:
            return None
        if isinstance(seen, redis_errors.InvalidResponse):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _unreachable(server: str | None, exc: BaseException) -> str:
    protocol = _protocol_error(exc)
    if protocol is not None:
        return not_redis(server, protocol)
    where = f"Redis at {server}" if server else "Redis"
    detail = (str(exc) or type(exc).__name__).rstrip(".")
    return (
        f"cannot reach {where}: {detail}. Check that the server is running and that "
        "--redis-url (TTA_COORD_REDIS_URL) points at it"
    )


@contextmanager
def handle_errors(server: str | None = None) -> Generator[None]:
    """Report the errors a user can fix as one line and exit with the matching code.

    Args:
        server: the (redacted) Redis URL, named in connection errors.

    Raises:
        typer.Exit: for every error it recognises.
    """
    try:
        yield
    except CliError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except (ConfigurationError, InvalidAgentIdError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except redis_errors.AuthenticationError as exc:
        where = f" at {server}" if server else ""
        raise fail(
            f"Redis{where} refused the credentials: {exc}. Check the user and password "
            "in --redis-url",
            EXIT_FAILURE,
        ) from None
    except redis_errors.InvalidResponse as exc:
        raise fail(not_redis(server, exc), EXIT_FAILURE) from None
    except (redis_errors.ConnectionError, ConnectionError) as exc:
        raise fail(_unreachable(server, exc), EXIT_FAILURE) from None
    except (redis_errors.TimeoutError, TimeoutError) as exc:
        where = f"Redis at {server}" if server else "Redis"
        raise fail(f"{where} did not answer in time ({exc or 'timeout'})", EXIT_FAILURE) from None
    except (CoordinatorUnavailableError, RegistryUnavailableError) as exc:
        raise fail(_unreachable(server, exc), EXIT_FAILURE) from None
    except CircuitBreakerOpenError as exc:
        raise fail(f"{exc}: Redis failed repeatedly; try again later", EXIT_FAILURE) from None
    except redis_errors.ResponseError as exc:
        # e.g. NOPERM from an ACL, or a server too old for a command.
        raise fail(f"Redis refused a command: {exc}", EXIT_FAILURE) from None
    except StoreError as exc:  # its message names the store and what to check
        raise fail(str(exc), EXIT_FAILURE) from None
    except (
        CoordinationError,
        AgentRegistryError,
        redis_errors.RedisError,
        redis_errors.RedisClusterException,
        OSError,
    ) as exc:
        raise fail(f"{type(exc).__name__}: {exc}", EXIT_FAILURE) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise fail("interrupted", EXIT_INTERRUPTED) from None
