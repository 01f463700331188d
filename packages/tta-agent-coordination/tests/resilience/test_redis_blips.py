"""A Redis blip must cost seconds, not a minute (issue 23 item 6), on throwaway servers.

The client and guard are the ones an application gets: ``CoordinationSettings`` builds the
client, ``default_redis_guard`` the guard around it. Each test measures how long after
Redis answers again a guarded call succeeds, and that calls fail fast meanwhile.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from tta_agent_coordination.clients import RedisClient
from tta_agent_coordination.errors import CircuitBreakerOpenError
from tta_agent_coordination.resilience import CircuitState, RedisGuard, default_redis_guard
from tta_agent_coordination.settings import CoordinationSettings
from tta_agent_coordination.testing import server
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail

pytestmark = [pytest.mark.real_redis, pytest.mark.slow]

RECOVERY_BOUND_S = 5.0
"""Redis answering again -> a guarded call succeeds (the Redis breaker's longest open time
is 5 s; its health check answers in milliseconds once Redis does)."""


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes] | None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> float:
        self.proc = server.start_redis_server(self.port)
        await server.wait_until_up(self.port)
        return time.monotonic()

    def kill(self) -> None:
        server.stop_redis_server(self.proc)
        self.proc = None

    def freeze(self) -> None:
        assert self.proc is not None
        server.freeze_redis_server(self.proc)

    def thaw(self) -> None:
        assert self.proc is not None
        server.thaw_redis_server(self.proc)


@pytest.fixture
async def redis_server() -> AsyncIterator[Server]:
    try:
        server.redis_server_path()
    except server.RedisServerNotFoundError as exc:
        skip_or_fail(str(exc))
    srv = Server(server.free_port(), None)
    await srv.start()
    try:
        yield srv
    finally:
        srv.kill()


async def call_until(
    guard: RedisGuard, fn: Callable[[], Awaitable[object]], ok: Callable[[], bool], limit_s: float
) -> list[str]:
    """Call ``fn`` through ``guard`` every 20 ms until ``ok()``; each outcome's kind."""
    kinds: list[str] = []
    deadline = time.monotonic() + limit_s
    while not ok() and time.monotonic() < deadline:
        try:
            await guard.run("ping", fn)
            kinds.append("ok")
        except CircuitBreakerOpenError:
            kinds.append("refused")
        except Exception:
            kinds.append("failed")
        await asyncio.sleep(0.02)
    return kinds


async def first_success_after(
    guard: RedisGuard, client: RedisClient, since: float, limit_s: float
) -> float:
    """Seconds from ``since`` until a guarded PING succeeds (calling every 20 ms)."""
    deadline = since + limit_s
    while time.monotonic() < deadline:
        try:
            await guard.run("ping", client.ping)
            return time.monotonic() - since
        except Exception:
            await asyncio.sleep(0.02)
    return float("inf")


async def test_a_3s_restart_costs_seconds_not_a_minute(redis_server: Server) -> None:
    """Redis killed and restarted 3 s later while a caller keeps calling every 20 ms."""
    client = CoordinationSettings(redis_url=redis_server.url).redis_client()
    guard = default_redis_guard(client)
    try:
        assert await guard.run("ping", client.ping)
        redis_server.kill()
        killed = time.monotonic()
        kinds = await call_until(
            guard, client.ping, lambda: time.monotonic() - killed > 3.0, limit_s=5
        )
        assert guard.breaker.state is CircuitState.OPEN, kinds
        assert kinds.count("failed") <= 2, kinds  # the breaker opened at the first failure
        # While Redis is known down, calls are refused at once.
        start = time.monotonic()
        for _ in range(100):
            with pytest.raises(CircuitBreakerOpenError):
                await guard.run("ping", client.ping)
        assert time.monotonic() - start < 0.2
        starting = asyncio.create_task(redis_server.start())
        kinds += await call_until(guard, client.ping, starting.done, limit_s=10)
        answered = await starting
        recovered = await first_success_after(guard, client, answered, RECOVERY_BOUND_S + 3)
        print(
            f"\n3 s restart: {kinds.count('failed')} call(s) failed, "
            f"{kinds.count('refused')} refused; a guarded call succeeded "
            f"{recovered:.2f}s after Redis answered"
        )
        assert recovered <= RECOVERY_BOUND_S
    finally:
        await client.aclose()


async def test_a_freeze_longer_than_the_socket_timeout_fails_fast_then_recovers(
    redis_server: Server,
) -> None:
    """SIGSTOP for 4 s with a 1 s socket timeout (the 15 s / 10 s of production, scaled).

    One caller calling in turn: its first call hangs for the socket timeout, the health
    check confirms that Redis does not answer, and from then on its calls are refused at
    once, even while a call admitted earlier is still hanging; only a half-open probe
    waits, for the health check (at most its 1 s bound). After SIGCONT a call succeeds
    within the bound.
    """
    settings = CoordinationSettings(redis_url=redis_server.url, socket_timeout_s=1.0)
    client = settings.redis_client()
    guard = default_redis_guard(client)
    try:
        assert await guard.run("ping", client.ping)
        redis_server.freeze()
        frozen = time.monotonic()
        durations: list[tuple[str, float]] = []
        straggler: asyncio.Task[object] | None = None
        refused_while_in_flight = 0
        while time.monotonic() - frozen < 4.0:
            if straggler is None and time.monotonic() - frozen > 1.2:
                # admitted while the breaker is still closed: hangs for the socket timeout
                straggler = asyncio.create_task(guard.run("get", lambda: client.get("k")))
            start = time.monotonic()
            try:
                await guard.run("ping", client.ping)
                kind = "ok"
            except CircuitBreakerOpenError:
                kind = "refused"
                if straggler is not None and not straggler.done():
                    refused_while_in_flight += 1
            except Exception:
                kind = "failed"
            durations.append((kind, time.monotonic() - start))
            await asyncio.sleep(0.02)
        redis_server.thaw()
        thawed = time.monotonic()
        recovered = await first_success_after(guard, client, thawed, RECOVERY_BOUND_S + 3)
        if straggler is not None:
            await asyncio.gather(straggler, return_exceptions=True)
        failed = [d for kind, d in durations if kind == "failed"]
        refused = sorted(d for kind, d in durations if kind == "refused")
        print(
            f"\n4 s freeze: {len(failed)} call(s) failed after "
            f"{', '.join(f'{d:.2f}s' for d in failed)}; {len(refused)} refused "
            f"(median {refused[len(refused) // 2] * 1000:.2f} ms, slowest {refused[-1]:.2f}s: "
            f"a probe waiting for the health check), {refused_while_in_flight} while "
            f"another call hung; a call succeeded {recovered:.2f}s after SIGCONT"
        )
        # One socket timeout (1 s) plus the health check that confirms it (1 s), not five.
        assert len(failed) == 1, durations
        assert failed[0] < 2.5, durations
        assert refused[len(refused) // 2] < 0.005
        assert refused[-1] < 1.0 + 0.2  # at most the health check's bound
        assert refused_while_in_flight > 0
        assert recovered <= RECOVERY_BOUND_S
    finally:
        await client.aclose()
