"""The host's agents: one calculator that answers ``add`` requests.

``make_worker`` is a factory in the form ``tta-coord worker`` expects, so the same code
runs under the CLI in production::

    tta-coord --redis-url redis://127.0.0.1:6379/0 worker host_app.agents:make_worker
"""

from __future__ import annotations

from pydantic import BaseModel

from tta_agent_coordination import (
    AgentId,
    AgentWorker,
    MessageContext,
    RedisAgentRegistry,
    RedisMessageCoordinator,
)

__all__ = ["CALCULATOR", "Add", "make_worker"]

CALCULATOR = AgentId("calculator", "c1")


class Add(BaseModel):
    """The payload of an ``add`` request."""

    a: int
    b: int


def make_worker(
    coordinator: RedisMessageCoordinator, registry: RedisAgentRegistry | None
) -> AgentWorker:
    """The calculator agent: answers ``Add`` requests with their sum."""
    worker = AgentWorker(coordinator, registry, CALCULATOR, concurrency=4)

    @worker.on_request(payload=Add)
    async def add(ctx: MessageContext[Add]) -> dict[str, int]:
        return {"sum": ctx.payload.a + ctx.payload.b}

    return worker
