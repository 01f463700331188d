"""Throwaway redis-server processes a fault test can freeze, kill -9 and restart.

Built on ``tta_agent_coordination.testing.server``. Every server listens on a free loopback
port; ``RedisServers`` (the ``redis_servers`` fixture) kills every server it started when
the test ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tta_agent_coordination.testing.pytest_plugin import skip_or_fail
from tta_agent_coordination.testing.server import (
    RedisServerNotFoundError,
    free_port,
    redis_server_path,
    start_redis_server,
    stop_redis_server,
    wait_until_up,
)

START_LIMIT_S = 10.0
"""How long a (re)started server may take to answer PING (loading an AOF included)."""


@dataclass
class RedisServer:
    """One redis-server on ``127.0.0.1:port``; restartable on the same port and data dir."""

    port: int
    options: dict[str, Any]
    data_dir: Path | None
    proc: subprocess.Popen[bytes] | None = None
    frozen: bool = False
    clients: list[aioredis.Redis] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        """Start (or start again) on the same port and data dir; wait until it answers."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = start_redis_server(self.port, **self.options)
        try:
            await wait_until_up(self.port, limit_s=START_LIMIT_S)
        except BaseException:
            self.kill9()
            raise

    def kill9(self) -> None:
        """SIGKILL the server (no shutdown, no final fsync) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            if self.frozen:
                os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process dies on SIGKILL too,
                self.frozen = False  # but resume it so nothing waits on it
            stop_redis_server(self.proc)

    async def restart(self, *, empty: bool = False) -> float:
        """kill -9 if running, then start on the same port; the monotonic time it answered.

        With ``empty`` the append-only files of ``data_dir`` are deleted first (a server
        that lost its data); otherwise a server with ``appendonly`` loads them.
        """
        self.kill9()
        if empty and self.data_dir is not None:
            for item in sorted(self.data_dir.rglob("*"), reverse=True):
                item.unlink() if item.is_file() else item.rmdir()
        await self.start()
        return time.monotonic()

    def freeze(self) -> None:
        """SIGSTOP: the server keeps its data and connections but stops answering."""
        os.kill(self.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        os.kill(self.pid, signal.SIGCONT)
        self.frozen = False

    def client(self, **overrides: Any) -> aioredis.Redis:
        """A plain client for the test's own checks (no client-side retries); closed at the end."""
        options: dict[str, Any] = {
            "socket_timeout": 5.0,
            "socket_connect_timeout": 2.0,
            "retry": Retry(NoBackoff(), 0),
            **overrides,
        }
        client = aioredis.Redis(host="127.0.0.1", port=self.port, **options)
        self.clients.append(client)
        return client

    async def info(self, section: str) -> dict[str, Any]:
        """``INFO section`` from a fresh connection."""
        probe = aioredis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5.0)
        try:
            return await probe.info(section)
        finally:
            await probe.aclose()


class RedisServers:
    """Starts servers for one test and kills all of them at its end."""

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._servers: list[RedisServer] = []

    async def start(
        self, *, aof: bool = False, maxmemory: str | None = None, policy: str | None = None
    ) -> RedisServer:
        """A new running server: with ``aof``, ``appendonly yes`` + ``appendfsync always``."""
        options: dict[str, Any] = {}
        data_dir: Path | None = None
        if aof:
            data_dir = self._tmp / f"redis-{len(self._servers)}"
            data_dir.mkdir()
            options |= {"appendonly": True, "appendfsync": "always", "data_dir": data_dir}
        if maxmemory is not None:
            options |= {"maxmemory": maxmemory, "maxmemory_policy": policy or "noeviction"}
        server = RedisServer(port=free_port(), options=options, data_dir=data_dir)
        self._servers.append(server)
        await server.start()
        return server

    async def aclose(self) -> None:
        """Kill every server (resuming frozen ones first) and close the test's clients."""
        for server in self._servers:
            if server.frozen and server.proc is not None and server.proc.poll() is None:
                server.thaw()
            for client in server.clients:
                with contextlib.suppress(Exception):  # teardown: the server goes anyway
                    await asyncio.wait_for(client.aclose(), 5)
            server.kill9()


def require_redis_server() -> None:
    """Skip without ``redis-server``; fail instead under ``CI=true`` (see skip_or_fail)."""
    try:
        redis_server_path()
    except RedisServerNotFoundError as exc:
        skip_or_fail(str(exc))
