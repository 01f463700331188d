"""Fault tolerance in one agent: a transient retry, a dead letter, and a circuit breaker.

The ``summariser`` agent calls an LLM (simulated here):

* ``chapter-1``: the LLM times out on the first delivery; the message is retried with
  backoff and succeeds on the second;
* ``chapter-2``: the text is unusable (``PermanentError``): dead-lettered at once;
* then the LLM goes down. Its calls go through a circuit breaker (``protect``): after two
  failures the breaker opens and the remaining deliveries fail fast, without calling the
  LLM, until retries run out and those messages reach the dead-letter queue too.

Runs on an embedded FakeRedis, or the Redis at ``TTA_COORD_REDIS_URL``; exits 0 only
when every message ended where it should.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import redis.asyncio as aioredis

from tta_agent_coordination import (
    AgentId,
    AgentMessage,
    AgentWorker,
    MessageContext,
    MessageType,
    PermanentError,
    RedisMessageCoordinator,
)
from tta_agent_coordination.models import DeadLetter
from tta_agent_coordination.observability.logging import configure_logging
from tta_agent_coordination.resilience import CircuitBreaker, CircuitBreakerConfig, protect

SUMMARISER = AgentId("summariser")
EDITOR = AgentId("editor")


class LLMUnavailableError(Exception):
    """The simulated LLM API did not answer."""


class FakeLLM:
    """An LLM API that times out once, and later goes down for good."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = False
        self._timed_out = False

    async def complete(self, prompt: str) -> str:
        """A summary of ``prompt``, or ``LLMUnavailableError``."""
        self.calls += 1
        if self.down:
            raise LLMUnavailableError("the LLM API is down")
        if not self._timed_out:
            self._timed_out = True
            raise LLMUnavailableError("the LLM API timed out")
        return f"summary of {prompt}"


def connect() -> tuple[aioredis.Redis, str]:
    """The Redis at ``TTA_COORD_REDIS_URL``, or an embedded FakeRedis."""
    url = os.environ.get("TTA_COORD_REDIS_URL")
    if url:
        return aioredis.Redis.from_url(url), url
    from tta_agent_coordination.testing import fake_redis

    return fake_redis(), "an embedded FakeRedis"


async def until(check: object, seconds: float = 15.0) -> bool:
    """Wait until ``check()`` is true; False after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():  # type: ignore[operator]
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def main() -> int:
    """Run the three failures; 0 when every message ended where it should."""
    # The failures below are on purpose; the library's logs of them would drown the output.
    configure_logging("CRITICAL")
    client, where = connect()
    prefix = f"example-{uuid.uuid4().hex[:8]}"
    # One retry (two deliveries), 0.1 s apart: enough to show retries in a second or two.
    coordinator = RedisMessageCoordinator(
        client, key_prefix=prefix, retry_attempts=1, backoff_base=0.1, backoff_max=0.1
    )
    llm = FakeLLM()
    breaker = CircuitBreaker("llm", CircuitBreakerConfig(failure_threshold=2, timeout_seconds=60))
    complete = protect(llm.complete, breaker=breaker)
    worker = AgentWorker(coordinator, None, SUMMARISER, concurrency=1, poll_interval=0.2)
    summaries: list[str] = []

    @worker.on_event()
    async def summarise(ctx: MessageContext[dict[str, str]]) -> None:
        text = ctx.payload["text"]
        if text == "chapter-2":
            raise PermanentError("chapter-2 is not text")
        summaries.append(await complete(text))  # LLMUnavailableError: transient, retried

    async def send(text: str) -> None:
        message = AgentMessage(
            sender=EDITOR,
            recipient=SUMMARISER,
            message_type=MessageType.EVENT,
            payload={"text": text},
        )
        assert (await coordinator.send_message(EDITOR, SUMMARISER, message)).delivered

    print(f"fault tolerance on {where} (prefix {prefix})")
    try:
        async with worker:
            await send("chapter-1")
            await send("chapter-2")
            settled = await until(lambda: worker.stats.succeeded + worker.stats.dead_lettered == 2)
            print(f"after the first two: {worker.stats}")
            llm.down = True
            for n in (3, 4, 5):
                await send(f"chapter-{n}")
            settled = settled and await until(lambda: worker.stats.dead_lettered == 4)
        letters = await coordinator.dead_letters(SUMMARISER)
        for letter in letters:
            if isinstance(letter, DeadLetter):  # else malformed: shown by its raw fields
                print(f"dead letter {letter.message.payload['text']}: {letter.last_error}")
        fast = sum("CircuitBreakerOpenError" in (d.last_error or "") for d in letters)
        stats = worker.stats
        print(f"LLM calls {llm.calls}, breaker {breaker.state.value}, summaries {summaries}")
        ok = (
            settled
            and summaries == ["summary of chapter-1"]
            and stats.retried == 1 + 3  # chapter-1 once, and chapters 3-5 once each
            and len(letters) == 4
            and llm.calls == 2 + 2  # chapter-1 twice; then two failures open the breaker
            and fast >= 1
            and breaker.state.value == "open"
        )
        print("OK" if ok else "FAILED: unexpected outcome")
        return 0 if ok else 1
    finally:
        await coordinator.aclose()
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
