"""Random sequences of inbox and conversation operations, checked against a model."""

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tta_agent_coordination.interactions import (
    AgentMessaging,
    ConversationBusyError,
    ConversationEndedError,
)
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.coordinator import RedisMessageCoordinator
from tta_agent_coordination.testing import (
    RealRedisUnavailableError,
    delete_prefix,
    fake_redis,
    real_redis,
    unique_prefix,
)
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail

AGENTS = [AgentId("agent", n) for n in ("a", "b", "c")]
agents = st.sampled_from(AGENTS)


def _pair(x: AgentId, y: AgentId) -> frozenset[str]:
    return frozenset((str(x), str(y)))


async def _drain(tasks: list[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


class ConversationModel(RuleBasedStateMachine):
    backend = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.prefix = unique_prefix("hypconv")
        self.redis = self.run(real_redis()) if self.backend == "real" else fake_redis()
        self.coord = RedisMessageCoordinator(self.redis, key_prefix=self.prefix)
        self.m = AgentMessaging(self.coord)
        self.run(self.m.register_organization("org"))
        for agent in AGENTS:
            self.run(self.m.register_agent(agent, organization="org"))
        self.seq = 0
        self.inbox: dict[str, list[tuple[str, str]]] = {str(a): [] for a in AGENTS}
        self.open: set[frozenset[str]] = set()
        # (waiter, other) -> the task waiting in send_and_wait
        self.waits: dict[tuple[str, str], asyncio.Task[Any]] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        for task in self.waits.values():
            task.cancel()
        self.run(_drain(list(self.waits.values())))
        self.run(self.coord.aclose())
        self.run(delete_prefix(self.redis, self.prefix))
        self.run(self.redis.aclose())
        # Finish every task left on this loop (blocked reads of the closed client) before
        # the loop is closed, so none is garbage-collected mid-await later.
        leftover = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in leftover:
            task.cancel()
        self.run(_drain(leftover))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    # --- inboxes --------------------------------------------------------------------------

    @rule(sender=agents, recipient=agents)
    def inbox_send(self, sender: AgentId, recipient: AgentId) -> None:
        self.seq += 1
        payload = f"m{self.seq}"
        self.run(self.m.async_conversation.send(sender, recipient, payload))
        self.inbox[str(recipient)].append((payload, str(sender)))

    @rule(agent=agents, limit=st.integers(1, 4))
    def read_unread(self, agent: AgentId, limit: int) -> None:
        got = self.run(self.m.async_conversation.get_unread_messages(agent, limit=limit))
        expected = self.inbox[str(agent)][:limit]
        assert [(g.payload, str(g.sender)) for g in got] == expected
        del self.inbox[str(agent)][:limit]

    @rule(agent=agents, other=agents, limit=st.integers(1, 4))
    def read_from(self, agent: AgentId, other: AgentId, limit: int) -> None:
        got = self.run(self.m.async_conversation.get_messages_from_agent(agent, other, limit=limit))
        mine = [e for e in self.inbox[str(agent)] if e[1] == str(other)][:limit]
        assert [(g.payload, str(g.sender)) for g in got] == mine
        for entry in mine:
            self.inbox[str(agent)].remove(entry)

    @rule(agent=agents)
    def wait_for_one(self, agent: AgentId) -> None:
        got = self.run(self.m.async_conversation.wait_for_message(agent, timeout=0.01))
        queue = self.inbox[str(agent)]
        if queue:
            assert got is not None
            assert (got.payload, str(got.sender)) == queue.pop(0)
        else:
            assert got is None

    # --- sync conversations ---------------------------------------------------------------

    def _settle(self) -> None:
        # Let the loop deliver pushed answers to the waiting tasks.
        self.run(asyncio.sleep(0.05))

    @rule(sender=agents, recipient=agents)
    def send_and_wait(self, sender: AgentId, recipient: AgentId) -> None:
        if sender == recipient:
            return
        self.seq += 1
        payload = f"s{self.seq}"
        key = (str(sender), str(recipient))
        if key in self.waits:
            with pytest.raises(ConversationBusyError):
                self.run(
                    self.m.sync_conversation.send_and_wait(sender, recipient, payload, timeout=60)
                )
            return
        task = self.loop.create_task(
            self.m.sync_conversation.send_and_wait(sender, recipient, payload, timeout=60)
        )
        self._settle()
        self.open.add(_pair(sender, recipient))
        other = self.waits.pop((str(recipient), str(sender)), None)
        if other is not None:  # the recipient waited for the sender: this is its answer
            self._settle()
            assert other.done()
            assert other.result().payload == payload
        self.waits[key] = task

    @rule(responder=agents, requester=agents)
    def reply(self, responder: AgentId, requester: AgentId) -> None:
        if responder == requester:
            return
        self.seq += 1
        payload = f"r{self.seq}"
        accepted = self.run(self.m.sync_conversation.reply(responder, requester, payload))
        task = self.waits.pop((str(requester), str(responder)), None)
        assert accepted == (task is not None)
        if task is not None:
            self._settle()
            assert task.done()
            assert task.result().payload == payload

    @rule(x=agents, y=agents)
    def end(self, x: AgentId, y: AgentId) -> None:
        if x == y:
            return
        ended = self.run(self.m.sync_conversation.end_conversation(x, y))
        assert ended == (_pair(x, y) in self.open)
        self.open.discard(_pair(x, y))
        tasks = [self.waits.pop(k) for k in [(str(x), str(y)), (str(y), str(x))] if k in self.waits]
        self._settle()
        for task in tasks:
            assert task.done()
            with pytest.raises(ConversationEndedError):
                task.result()

    @invariant()
    def waits_still_wait(self) -> None:
        assert not any(t.done() for t in self.waits.values())


def _run(backend: str, examples: int) -> None:
    if backend == "real":
        probe = asyncio.new_event_loop()
        try:
            probe.run_until_complete(_probe())
        except RealRedisUnavailableError as exc:
            skip_or_fail(str(exc))
        finally:
            probe.close()
    machine = type(f"ConversationModel_{backend}", (ConversationModel,), {"backend": backend})
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine.TestCase().runTest()


async def _probe() -> None:
    client = await real_redis()
    await client.aclose()


@pytest.mark.slow
def test_conversations_match_model_on_fakeredis() -> None:
    _run("fake", 30)


@pytest.mark.slow
@pytest.mark.real_redis
def test_conversations_match_model_on_real_redis() -> None:
    _run("real", 10)
