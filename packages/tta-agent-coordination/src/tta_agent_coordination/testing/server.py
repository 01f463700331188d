"""Throwaway ``redis-server`` processes for outage tests: start, freeze, kill, restart.

Each server listens on a free loopback port and is owned by the test that started it. By
default it keeps nothing on disk; fault-injection tests may ask for an append-only file in
a directory of their own, a memory limit, or any other ``redis-server`` option.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tta_agent_coordination.errors import CoordinationError

__all__ = [
    "RedisServerNotFoundError",
    "free_port",
    "freeze_redis_server",
    "redis_server_path",
    "start_redis_server",
    "stop_redis_server",
    "thaw_redis_server",
    "wait_until_up",
]


class RedisServerNotFoundError(CoordinationError):
    """No ``redis-server`` executable is on the PATH."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_path() -> str:
    """The path of ``redis-server``.

    Raises:
        RedisServerNotFoundError: it is not installed.
    """
    path = shutil.which("redis-server")
    if path is None:
        raise RedisServerNotFoundError(
            "redis-server is not installed (apt-get install redis-server)"
        )
    return path


def start_redis_server(
    port: int,
    path: str | None = None,
    *,
    appendonly: bool = False,
    appendfsync: str | None = None,
    data_dir: str | Path | None = None,
    maxmemory: str | int | None = None,
    maxmemory_policy: str | None = None,
    extra_args: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Start a redis-server on ``127.0.0.1:port``; the process.

    With only ``port`` (and ``path``) the server has no persistence, as before. The
    keyword arguments add options for fault-injection tests; each is passed to
    ``redis-server`` as the option of the same name.

    Args:
        port: the loopback port to listen on.
        path: the ``redis-server`` executable (found on the PATH by default).
        appendonly: keep an append-only file (``--appendonly yes``); give ``data_dir``
            so that a restart on the same directory loads it.
        appendfsync: ``always``, ``everysec`` or ``no`` (with ``appendonly``).
        data_dir: the server's working directory (``--dir``), where the append-only
            file lives; it must exist.
        maxmemory: the memory limit (``--maxmemory``, e.g. ``"5mb"``).
        maxmemory_policy: what a full server does (``--maxmemory-policy``, e.g.
            ``"noeviction"``).
        extra_args: more ``redis-server`` arguments, appended as given.
    """
    args = [
        path or redis_server_path(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--daemonize",
        "no",
    ]
    if appendfsync is not None:
        args += ["--appendfsync", appendfsync]
    if data_dir is not None:
        args += ["--dir", str(data_dir)]
    if maxmemory is not None:
        args += ["--maxmemory", str(maxmemory)]
    if maxmemory_policy is not None:
        args += ["--maxmemory-policy", maxmemory_policy]
    args += list(extra_args)
    # A fixed argument list, no shell; the binary comes from shutil.which or the caller.
    return subprocess.Popen(  # nosec B603
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_until_up(port: int, limit_s: float = 5.0) -> None:
    """Wait until the server on ``port`` answers PING.

    Raises:
        redis.exceptions.ConnectionError: it did not answer within ``limit_s``.
    """
    deadline = time.monotonic() + limit_s
    while True:
        probe = aioredis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
        try:
            if await probe.ping():  # pyright: ignore[reportUnknownMemberType]
                return
        except (redis_errors.ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)
        finally:
            await probe.aclose()


def stop_redis_server(proc: subprocess.Popen[bytes] | None) -> None:
    """Kill the server (as a crash would) and reap it; nothing if already gone.

    A frozen server is resumed first, so that nothing waits on it.
    """
    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=5)


def freeze_redis_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGSTOP the server: it keeps its data and connections but answers nothing.

    As a Redis behind a network partition, in a long fork or in a paused VM. Always
    :func:`thaw_redis_server` it (or :func:`stop_redis_server`, which kills it anyway).
    """
    os.kill(proc.pid, signal.SIGSTOP)


def thaw_redis_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGCONT a server stopped by :func:`freeze_redis_server` (nothing if it has exited)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
