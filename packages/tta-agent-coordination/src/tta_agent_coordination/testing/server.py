"""Throwaway ``redis-server`` processes for outage tests: start, freeze, kill, restart.

Each server listens on a free loopback port, keeps nothing on disk, and is owned by the
test that started it.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tta_agent_coordination.errors import CoordinationError

__all__ = [
    "RedisServerNotFoundError",
    "free_port",
    "redis_server_path",
    "start_redis_server",
    "stop_redis_server",
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


def start_redis_server(port: int, path: str | None = None) -> subprocess.Popen[bytes]:
    """Start a redis-server on ``127.0.0.1:port`` with no persistence; the process."""
    # A fixed argument list, no shell; the binary comes from shutil.which or the caller.
    return subprocess.Popen(  # nosec B603
        [
            path or redis_server_path(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
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
    """Kill the server (as a crash would) and reap it; nothing if already gone."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=5)
