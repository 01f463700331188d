from tta_agent_coordination import AgentId, AgentMessage, MessageType, RedisMessageCoordinator


async def test_handles_a_request(coordination_redis, key_prefix):
    coord = RedisMessageCoordinator(coordination_redis, key_prefix=key_prefix)
    agent = AgentId("world_builder")
    message = AgentMessage(
        sender=agent, recipient=agent, message_type=MessageType.EVENT, payload={"room": 1}
    )
    assert (await coord.send_message(agent, agent, message)).delivered
    received = await coord.receive(agent)
    assert received is not None
    assert received.message.payload == {"room": 1}
    assert await coord.ack(agent, received.token)
    await coord.aclose()


async def test_a_worker_answers(coordination_worker_factory, coordination_coordinator):
    worker = coordination_worker_factory("calculator:c1")

    @worker.on_request()
    async def add(ctx):
        return {"sum": ctx.payload["a"] + ctx.payload["b"]}

    async with worker:
        reply = await coordination_coordinator.request(
            AgentId("client"), AgentId("calculator", "c1"), {"a": 2, "b": 3}, timeout=5
        )
    assert reply.payload == {"sum": 5}
